"""Merge a LoRA adapter into its base model and export a folder that plain Transformers loads.

    report = kit.export.merge_and_save("work/06_identity/adapter", "work/11_export/merged")
    print(report)          # files, shards, stop tokens, and the merged-vs-adapter logit check

What `merge_and_save` guarantees (LLaMA-Factory's `llamafactory-cli export`, made checked):
- the base is loaded in its own precision (config `dtype`) and never quantized: a QLoRA adapter is
  merged into the un-quantized base ("Cannot merge adapters to a quantized model" cannot happen);
  a base folder that is itself pre-quantized is refused with a clear error;
- W' = W + (alpha / r) * B @ A is folded into every adapted layer (peft `merge_and_unload`, with
  its NaN check), then the logits of the merged model are compared with the adapter model's on
  sample prompts; the largest absolute difference is reported and must stay within `tolerance`.
  For models under 1B parameters both forward passes run in float64 (the weights are upcast
  exactly, then restored): that measures the merge itself. In the model's own fp32 a forward pass
  carries rounding noise of its own (about 1e-4 on logits of size ~40 for the built-in model, for
  the adapter and the merged model alike), which is reported next to it as `max_abs_logit_diff_native`;
- safetensors shards no larger than `export_size` GB, the tokenizer with the *training* template
  as its chat template (Template.to_jinja), a generation config whose `eos_token_id` lists the
  template's stop tokens, optionally an Ollama Modelfile and an 8-/4-bit bitsandbytes copy;
- an existing `export_dir` is never overwritten unless `overwrite=True`; files are written to a
  temporary folder first, so a failed export leaves nothing half-written.

Option names follow LLaMA-Factory's export arguments (`export_dir`, `export_size`,
`model_name_or_path`, `template`), except the quantized copy: it is `bnb_quantization_bit`, named for
what it does (bitsandbytes). LLaMA-Factory's `export_quantization_bit` means GPTQ with a calibration
set, which the kit does not do, so that option is refused with a message, never read as bitsandbytes.
Left out: GPTQ/AWQ quantization, pushing to a hub. GGUF files (Ollama, llama.cpp, LM Studio):
`to_gguf` (kit.gguf_export).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field, fields
from pathlib import Path

SAMPLE_PROMPTS = ("Who are you?", "What is the capital of France?", "Write one sentence about the sea.")
# Largest merged-vs-adapter logit difference accepted, per precision. fp32 is exact up to
# summation order; half precisions round W + BA once more (the bf16 step at |W| ~ 1 is 2**-8).
TOLERANCE = {"float32": 1e-4, "float16": 5e-2, "bfloat16": 2.5e-1}


from kit.gguf_export import QUANTIZATIONS as GGUF_QUANTIZATIONS  # noqa: E402,F401  (kit.export.to_gguf)
from kit.gguf_export import GGUFExportError, GGUFReport, to_gguf  # noqa: E402,F401
from kit.verify import logits_on, max_abs_diff, prompt_batch  # noqa: E402


class ExportError(RuntimeError):
    """The export cannot be done as asked (the message says what to change)."""


@dataclass
class ExportConfig:
    """Settings of one export. The field default and help text are the only copy of each."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "the base model; default: base_model_name_or_path from adapter_config.json"})
    template: str | None = field(default=None, metadata={"help": "kit.templates name used in training; default: the training run's, else the built-in model's, else the tokenizer's own chat template"})
    export_size: float | str = field(default=5, metadata={"help": "largest safetensors shard, in GB (LLaMA-Factory export_size) or a string such as '200MB'"})
    bnb_quantization_bit: int | None = field(default=None, metadata={"help": "also save a bitsandbytes-quantized copy of the merged model: 8 or 4 (None = full precision only; not LLaMA-Factory's GPTQ export_quantization_bit)"})
    ollama_modelfile: bool = field(default=True, metadata={"help": "write an Ollama Modelfile (FROM . + the chat template as a Go template + stop words)"})
    verify: bool = field(default=True, metadata={"help": "compare merged and adapter logits on sample prompts before writing anything"})
    verify_prompts: tuple = field(default=SAMPLE_PROMPTS, metadata={"help": "user messages used for the logit check"})
    tolerance: float | None = field(default=None, metadata={"help": "largest accepted max |logit difference|; default by dtype: fp32 1e-4, fp16 5e-2, bf16 2.5e-1"})
    verify_dtype: str | None = field(default=None, metadata={"help": "precision of the logit check: float64 (default under 1B parameters: the merge alone, without fp32 forward-pass rounding) or 'native' (the model's own dtype)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing export_dir (otherwise refuse)"})

    def validate(self) -> "ExportConfig":
        if self.bnb_quantization_bit not in (None, 4, 8):
            raise ExportError(f"bnb_quantization_bit={self.bnb_quantization_bit!r}: use None, 8 or 4 (bitsandbytes)")
        if isinstance(self.export_size, (int, float)) and self.export_size <= 0:
            raise ExportError(f"export_size={self.export_size!r} GB must be > 0")
        return self

    @property
    def max_shard_size(self) -> str:
        return self.export_size if isinstance(self.export_size, str) else f"{int(self.export_size * 1000)}MB"


@dataclass
class ExportReport:
    export_dir: str
    base: str
    template: str | None
    dtype: str
    files: list[str]
    shards: list[str]
    stop_words: list[str]
    eos_token_id: list[int]
    max_abs_logit_diff: float | None
    tolerance: float | None
    verify_dtype: str | None = None
    max_abs_logit_diff_native: float | None = None
    quantization_bit: int | None = None
    quantized_max_abs_logit_diff: float | None = None

    @property
    def verified(self) -> bool:
        return self.max_abs_logit_diff is not None and self.max_abs_logit_diff <= self.tolerance

    def __str__(self) -> str:
        check = ("not checked" if self.max_abs_logit_diff is None else
                 f"max |merged - adapter| logit = {self.max_abs_logit_diff:.2e} computed in {self.verify_dtype} "
                 f"(tolerance {self.tolerance:.0e}): " + ("OK" if self.verified else "FAILED")
                 + (f"; in {self.dtype} forward passes {self.max_abs_logit_diff_native:.2e}"
                    if self.max_abs_logit_diff_native is not None and self.verify_dtype != self.dtype else ""))
        lines = [f"exported to  {self.export_dir}", f"base         {self.base} ({self.dtype})",
                 f"template     {self.template or 'the tokenizer own'}", f"stop words   {self.stop_words} -> eos_token_id {self.eos_token_id}",
                 f"shards       {len(self.shards)}: {', '.join(self.shards)}", f"files        {', '.join(self.files)}",
                 f"verification {check}"]
        if self.quantization_bit:
            lines.append(f"quantized    {self.quantization_bit}-bit bitsandbytes; max |quantized - adapter| logit = "
                         f"{self.quantized_max_abs_logit_diff:.3f}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------- helpers

def read_adapter_config(adapter_dir) -> dict:
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.exists():
        raise ExportError(f"{adapter_dir} is not a LoRA adapter folder: {path.name} is missing")
    from kit.train.checkpoints import adapter_problems

    problems = [p for p in adapter_problems(adapter_dir) if "has no adapter_model" not in p]
    if problems:  # a cut-short file: name it, instead of a bare JSON / safetensors error later
        raise ExportError(f"the adapter in {adapter_dir} is damaged: {'; '.join(problems)}")
    return json.loads(path.read_text())


def training_template(adapter_dir) -> str | None:
    """The template a kit training run recorded next to (or above) its adapter, if any."""
    import yaml

    for folder in (Path(adapter_dir), Path(adapter_dir).parent):
        for name in ("kit_config.yaml", "llamafactory_config.yaml"):
            path = folder / name
            if path.exists():
                data = yaml.safe_load(path.read_text()) or {}
                if isinstance(data, dict) and data.get("template"):
                    return str(data["template"])
    return None


def _resolve_template(config: ExportConfig, adapter_dir, base: str):
    from kit import models

    name = config.template or training_template(adapter_dir)
    if name is None and (models.is_builtin(base) or Path(base).resolve() == models.builtin_dir().resolve()):
        name = models.BUILTIN_TEMPLATE
    if name is None:
        return None
    from kit import templates

    return templates.get(name)


def logits_in(model, batch, check_dtype: str, model_dtype):
    """Logits with the model temporarily cast to `check_dtype` (fp32 -> fp64 -> fp32 is exact, so
    the weights come back bit for bit; a cast down would not, hence only upcasts are allowed)."""
    import torch

    target = getattr(torch, check_dtype)
    if target == model_dtype:
        return logits_on(model, batch)
    if torch.finfo(target).bits < torch.finfo(model_dtype).bits:
        raise ExportError(f"verify_dtype={check_dtype} is lower than the model's {model_dtype}; use float64 or native")
    model.to(target)
    try:
        return [x.double() for x in logits_on(model, batch)]
    finally:
        model.to(model_dtype)


def ollama_modelfile(tokenizer, system: str | None, stops: list[str], source: str = ".") -> str:
    """An Ollama Modelfile derived from the tokenizer's own chat template (kit.ollama.modelfile_from_tokenizer)."""
    from kit.ollama import modelfile_from_tokenizer

    try:
        return modelfile_from_tokenizer(tokenizer, system, stops, source=source)
    except ValueError as error:
        raise ExportError(str(error)) from None


def _default_system(template, tokenizer) -> str | None:
    system = getattr(template, "default_system", None)
    if system:
        return system
    # the tokenizer's own template: render one user turn and read back what it put as system
    text = tokenizer.apply_chat_template([{"role": "user", "content": "@@KIT_USER@@"}], tokenize=False)
    with_sys = tokenizer.apply_chat_template([{"role": "system", "content": "@@KIT_SYSTEM@@"},
                                              {"role": "user", "content": "@@KIT_USER@@"}], tokenize=False)
    head, _, tail = with_sys.partition("@@KIT_SYSTEM@@")
    if text.startswith(head) and tail and tail in text:
        return text[len(head): text.index(tail, len(head))] or None
    return None


def _check_target(export_dir: Path, adapter_dir: Path, overwrite: bool) -> None:
    if export_dir.exists() and (not export_dir.is_dir() or any(export_dir.iterdir())):
        if not overwrite:
            raise FileExistsError(f"export_dir {export_dir} already exists and is not empty; pass overwrite=True "
                                  "(--overwrite) to replace it, or choose another folder")
        if export_dir.resolve() in [adapter_dir.resolve(), *adapter_dir.resolve().parents]:
            raise ExportError(f"export_dir {export_dir} holds the adapter {adapter_dir}; overwriting it would delete it")
        from kit import marker

        marker.check_replaceable(export_dir, "export_dir")  # only a folder the kit made is replaced


# ---------------------------------------------------------------------------------------- merge

GPTQ_REFUSED = ("export_quantization_bit is LLaMA-Factory's GPTQ quantization (with a calibration dataset), "
                "which this kit does not do; for a bitsandbytes-quantized copy use bnb_quantization_bit (8 or 4)")

def merge_and_save(adapter_dir, export_dir, **options) -> ExportReport:
    """Merge the LoRA adapter in `adapter_dir` into its base and save a plain model in `export_dir`.

    Options are ExportConfig fields (model_name_or_path, template, export_size, bnb_quantization_bit,
    ollama_modelfile, verify, verify_prompts, tolerance, overwrite). Returns an ExportReport.
    Steps: check the options and target, load the un-quantized base, attach the tokenizer and
    template, merge and verify the logits, write everything through a temporary folder.
    """
    from peft import PeftModel

    from kit.chat import stop_token_ids, stop_words

    config = _export_config(options)
    adapter_dir, export_dir = Path(adapter_dir), Path(export_dir)
    adapter_config = read_adapter_config(adapter_dir)
    _check_target(export_dir, adapter_dir, config.overwrite)
    base_name, base, model, dtype = _load_base(config, adapter_config, adapter_dir)
    tokenizer, template = _tokenizer_with_template(config, adapter_dir, base_name, base, model)
    words, eos_ids = stop_words(template, tokenizer), stop_token_ids(template, tokenizer)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    merged, check = _merge_and_verify(model, config, tokenizer, template, dtype)
    _set_generation_config(merged, tokenizer, eos_ids)
    quantized_diff = _write_folder(export_dir, merged, tokenizer, config, template, words, check)
    files = sorted(p.name for p in export_dir.iterdir())
    diff = check["diff"]
    return ExportReport(
        export_dir=str(export_dir), base=str(base_name), template=getattr(template, "name", None),
        dtype=check["dtype_name"], files=files, shards=[f for f in files if f.endswith(".safetensors")],
        stop_words=words, eos_token_id=eos_ids, max_abs_logit_diff=diff,
        tolerance=check["tolerance"] if diff is not None else None,
        verify_dtype=check["check_dtype"] if diff is not None else None, max_abs_logit_diff_native=check["native"],
        quantization_bit=config.bnb_quantization_bit, quantized_max_abs_logit_diff=quantized_diff)


def _export_config(options: dict) -> ExportConfig:
    """ExportConfig from keyword options; an unknown option is a TypeError listing the allowed ones."""
    allowed = {f.name for f in fields(ExportConfig)}
    if options.get("export_quantization_bit") is not None:
        raise ExportError(GPTQ_REFUSED)
    options.pop("export_quantization_bit", None)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"merge_and_save got unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    return ExportConfig(**options).validate()


def _load_base(config: ExportConfig, adapter_config: dict, adapter_dir: Path):
    """(base name, its resolved path, the un-quantized base model in its own precision on CPU, its dtype)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from kit import models

    base_name = config.model_name_or_path or adapter_config.get("base_model_name_or_path")
    if not base_name:
        raise ExportError(f"{adapter_dir}/adapter_config.json names no base model; pass model_name_or_path")
    base = models.resolve(base_name)
    base_config = AutoConfig.from_pretrained(base)
    if getattr(base_config, "quantization_config", None):
        raise ExportError(f"the base {base_name} is a quantized checkpoint ({base_config.quantization_config}); "
                          "an adapter cannot be merged into quantized weights. Point model_name_or_path at the "
                          "un-quantized (16/32-bit) base the adapter was trained from.")
    dtype = getattr(base_config, "dtype", None) or torch.float32
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    # un-quantized base in its own precision, on CPU (merging needs no accelerator)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, device_map=None)
    return base_name, base, model, dtype


def _tokenizer_with_template(config: ExportConfig, adapter_dir: Path, base_name: str, base: str, model):
    """The run's tokenizer (else the base's) with the training template as its chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base)
    template = _resolve_template(config, adapter_dir, base_name)
    if template is not None:  # as in training: EOS = the template's first stop word where it says so
        from kit import templates

        templates.fix_tokenizer(template, tokenizer)
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            raise ExportError(f"template {template.name!r} adds tokens the base model has no embeddings for; "
                              "export from a training run that saved its tokenizer and resized embeddings")
        tokenizer.chat_template = template.to_jinja(tokenizer)
    return tokenizer, template


def _merge_and_verify(model, config: ExportConfig, tokenizer, template, dtype):
    """Fold the adapter in and compare merged with adapter logits. Returns (merged model, check dict
    with diff, native, tolerance, check_dtype, dtype_name, adapter_logits, batch); raises when the
    difference is above tolerance."""
    from kit import models

    dtype_name = str(dtype).replace("torch.", "")
    batch = prompt_batch(tokenizer, config.verify_prompts, template) if config.verify else []
    check_dtype = config.verify_dtype or ("float64" if models.count_parameters(model)["total"] < 1e9 else "native")
    check_dtype = dtype_name if check_dtype == "native" else check_dtype
    adapter_logits = logits_on(model, batch) if batch else None
    adapter_check = logits_in(model, batch, check_dtype, dtype) if batch else None
    merged = model.merge_and_unload(safe_merge=True)
    tolerance = config.tolerance if config.tolerance is not None else TOLERANCE.get(dtype_name, 1e-4)
    diff = native = None
    if batch:
        native = max_abs_diff(adapter_logits, logits_on(merged, batch))
        diff = max_abs_diff(adapter_check, logits_in(merged, batch, check_dtype, dtype))
        if diff > tolerance:
            raise ExportError(f"merged and adapter logits differ by up to {diff:.3e} (computed in {check_dtype}) on "
                              f"{list(config.verify_prompts)}; tolerance {tolerance:.0e} for {dtype_name}. "
                              "Nothing was written")
    return merged, {"diff": diff, "native": native, "tolerance": tolerance, "check_dtype": check_dtype,
                    "dtype_name": dtype_name, "adapter_logits": adapter_logits, "batch": batch}


def _set_generation_config(merged, tokenizer, eos_ids: list[int]) -> None:
    """Stop on every stop token of the template; pad with the tokenizer's pad (else the first stop)."""
    generation_config = merged.generation_config
    generation_config.eos_token_id = eos_ids if len(eos_ids) > 1 else eos_ids[0]
    generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    merged.config.use_cache = True


def _write_folder(export_dir: Path, merged, tokenizer, config: ExportConfig, template, words, check) -> float | None:
    """Write shards, tokenizer, optional quantized copy and Modelfile into a temporary folder, then
    move it to `export_dir`. Returns the quantized copy's logit difference (None without one)."""
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.partial-", dir=export_dir.parent))
    quantized_diff = None
    try:
        from kit import marker

        marker.write_marker(tmp, "export")
        merged.save_pretrained(tmp, max_shard_size=config.max_shard_size, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if config.bnb_quantization_bit:
            quantized_diff = _quantize_folder(tmp, config.bnb_quantization_bit, check["adapter_logits"],
                                              check["batch"], config.max_shard_size)
        if config.ollama_modelfile:
            from kit import ollama as kit_ollama

            text = (kit_ollama.modelfile(template, tokenizer, source=".", stop_words=words) if template is not None
                    else ollama_modelfile(tokenizer, _default_system(template, tokenizer), words))
            (tmp / "Modelfile").write_text(text)
        from kit.env import follow_umask

        follow_umask(tmp)  # mkdtemp made it 0700 and safetensors its files 0600: the export gets the usual ones
        if export_dir.exists():
            shutil.rmtree(export_dir) if export_dir.is_dir() else export_dir.unlink()
        tmp.rename(export_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return quantized_diff


def _quantize_folder(folder: Path, bits: int, adapter_logits, batch, max_shard_size: str) -> float | None:
    """Replace the full-precision weights in `folder` by a bitsandbytes 8-/4-bit copy."""
    from transformers import AutoModelForCausalLM

    from kit import models

    qconfig = models.quantization_config(bits)
    quantized = AutoModelForCausalLM.from_pretrained(folder, quantization_config=qconfig, device_map={"": "cpu"})
    diff = max_abs_diff(adapter_logits, logits_on(quantized, batch)) if adapter_logits is not None else None
    for old in list(folder.glob("*.safetensors")) + list(folder.glob("*.safetensors.index.json")):
        old.unlink()
    quantized.save_pretrained(folder, max_shard_size=max_shard_size, safe_serialization=True)
    return diff


# ------------------------------------------------------------------------------ fresh reload

_RELOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, messages, max_new_tokens = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    print(json.dumps({"prompt_ids": inputs["input_ids"][0].tolist(), "answer_ids": new.tolist(),
                      "answer": tokenizer.decode(new, skip_special_tokens=True).strip(),
                      "dtype": str(model.dtype), "eos_token_id": model.generation_config.eos_token_id}))
""")


def reload_and_chat(export_dir, messages: list[dict] | str, max_new_tokens: int = 32, timeout: float = 600) -> dict:
    """Load `export_dir` in a fresh Python process with plain transformers (no kit, no peft) and
    answer greedily through its own chat template. Returns {"answer", "prompt_ids", "answer_ids",
    "dtype", "eos_token_id"}: proof that the folder works on its own."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    cmd = [sys.executable, "-c", _RELOAD_SCRIPT, str(export_dir), json.dumps(messages), str(max_new_tokens)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ExportError(f"reloading {export_dir} in a fresh process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- CLI

@dataclass
class ExportCommand:
    """Flags of `python -m kit export` besides ExportConfig's (one field = one flag)."""

    adapter_name_or_path: str | None = field(default=None, metadata={"help": "the LoRA adapter folder"})
    export_dir: str | None = field(default=None, metadata={"help": "where to write the merged model"})
    no_modelfile: bool = field(default=False, metadata={"help": "do not write an Ollama Modelfile"})
    gguf: str | None = field(default=None, metadata={"help": "also write this GGUF file (Ollama / llama.cpp) from the merged "
                                                     "folder; without --adapter_name_or_path, export_dir is an existing merged folder"})
    quantization: str = field(default="f16", metadata={"help": "GGUF tensor type: f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0"})


def _export_size(value: str) -> float | str:
    """--export_size 1.5 (GB) or 200MB."""
    return float(value) if value.replace(".", "", 1).isdigit() else value


def cli_main(argv: list[str] | None = None) -> int:
    """`python -m kit export [merge.yaml] --adapter_name_or_path DIR --export_dir DIR [...]`.

    `--gguf FILE.gguf [--quantization q8_0]` also writes a GGUF file from the merged folder (to_gguf);
    without an adapter, `--export_dir` names an existing merged (or any llama-family) folder to convert.

    The YAML takes LLaMA-Factory's export keys (model_name_or_path, adapter_name_or_path, template,
    export_dir, export_size; bnb_quantization_bit for a bitsandbytes copy); flags override it. The flags are
    the fields of ExportCommand and ExportConfig, parsed by HfArgumentParser (kit.cli).
    """
    from kit.cli import dataclass_parser, parse, read_yaml

    parser = dataclass_parser("python -m kit export", "Merge a LoRA adapter into its base and export it.",
                              ExportCommand, ExportConfig, types={"export_size": _export_size},
                              positional=("config", "a LLaMA-Factory-style export YAML (optional)"))
    # the positional YAML is read before the flags, so that flags override its keys
    pre, _ = parser.parse_known_args(argv)
    settings = read_yaml(pre.config) if pre.config else {}
    if isinstance(settings.get("export_size"), str):
        settings["export_size"] = _export_size(settings["export_size"])
    command, config, _, unused = parse(parser, argv, settings)
    if command.gguf and not command.adapter_name_or_path and command.export_dir:
        return _gguf_cli(command.export_dir, command.gguf, command.quantization, config.overwrite)
    if not command.adapter_name_or_path or not command.export_dir:
        parser.error("both adapter_name_or_path and export_dir are needed (flags or YAML keys)")
    if command.no_modelfile:
        config.ollama_modelfile = False
    if unused.get("export_quantization_bit") is not None:
        parser.error(GPTQ_REFUSED)
    ignored = sorted(set(unused) - {"finetuning_type", "stage", "export_quantization_bit"})
    if ignored:
        print(f"note: ignoring keys the kit's export does not use: {ignored}", file=sys.stderr)
    options = {f.name: getattr(config, f.name) for f in fields(ExportConfig)}
    try:
        print(merge_and_save(command.adapter_name_or_path, command.export_dir, **options))
    except (ExportError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if command.gguf:
        return _gguf_cli(command.export_dir, command.gguf, command.quantization, config.overwrite)
    return 0


def _gguf_cli(model_dir, gguf_file, quantization: str, overwrite: bool) -> int:
    try:
        print(to_gguf(model_dir, gguf_file, quantization=quantization, overwrite=overwrite))
    except (GGUFExportError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
