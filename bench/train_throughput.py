"""Training throughput and peak memory: a naive loop vs kit.train.run defaults vs the kit's fast path.

    python bench/train_throughput.py --out bench/results             # GPU: 3 models x 3 paths
    python bench/train_throughput.py --smoke --out /tmp/tt            # CPU: a tiny model, a few steps
    python bench/train_throughput.py --jobs Qwen2.5-0.5B/kit SmolLM2-135M/fast --update
                                            # these (model, path) jobs only, replacing their records

One process per (model, path), all on the same rows in the same order: the kit's SFT demo data
(alpaca_en/zh, identity, glaive tool calls, sharegpt; variable lengths) repeated until one epoch holds
at least --min-tokens real (non-pad) tokens, shuffled once (seed 42) into one ShareGPT file
(mix_sources; checked to encode to the same examples), encoded with the smollm2 template by kit's own
encoder at cutoff_len 1024. The naive loop takes its batches in the file's order and the kit's paths
run with `disable_shuffling: true`, so step k of every path sees about the same examples (records
with data_order "mixed-once"; earlier records packed each source in its own order, so a packed row
held examples of one source, and the rows were then shuffled).
LoRA r16 (alpha 32) on every linear layer, batch 16, one epoch, learning rate 1e-4 (cosine), bf16.

* naive     a hand-written transformers + peft loop: padded batches of 16 examples (each padded to
            its longest row), fused AdamW, bf16 autocast over a bf16 base, fp32 LoRA weights, no
            checkpointing.
* kit       `kit.train.run` with the kit's defaults (on a GPU: gradient checkpointing on, SDPA).
* fast      the kit's fast path: `kit.train.run` with `enable_liger_kernel: true`, `neat_packing:
            true`, `cuda_graphs: true` (the decoder's forward and backward run as two captured CUDA
            graphs around eager kernels, accel.DecoderGraph; no compiler), `disable_gradient_checkpointing:
            true` (the naive loop does not checkpoint either), `optim: adamw_torch_fused` (the naive loop's
            fused AdamW) and `logging_nan_inf_filter: false`, with Liger's RMSNorm, SwiGLU and RoPE and
            the model's own cross-entropy, so that no step makes the CPU wait for the GPU (records carry
            host_syncs_per_step). One packed row per step, the row just long enough
            (`equal_steps_row_length`; `cutoff_len` raised from 1024 in steps of 64, which cuts no
            example: none reaches 1024 tokens) that the epoch has about as many optimizer steps as the
            naive loop, each holding about a naive batch's 16 examples, so the two loss curves can be
            compared step by step (the loss-agreement target). On a CPU (--smoke) the same run without
            the graphs. Its records were called fast_cg until 2026-11-30's sixth GPU session; the
            earlier versions are fast_cg_flce (Liger's fused cross-entropy) and fast_cg_lce (Liger's
            plain cross-entropy; both with the Trainer's NaN filter, two `.item()` waits a step).
* fast_compiled  the fast path as it was before (called "fast" until the sixth GPU session): Liger,
            neat packing, `torch_compile: true` (each decoder layer compiled; the rows padded to
            cutoff_len), checkpointing off, fused AdamW (FAST), with as many 1024-token packed rows per
            step as make about as many optimizer steps as the naive loop (`equal_steps_batch`: one row
            of about 12 examples, 545 steps to the naive loop's 416). Before the third GPU session
            "fast" was only Liger + neat packing, eager, with checkpointing: fast_eager_gc.
* fast_eq   fast_compiled's switches with CUDA graphs (`torch_compile_mode: reduce-overhead`) and
            fast's rows.
* fast_b16  the same switches at 16 packed rows per step: a packed row holds ~12 examples, so its
            epoch is ~12x fewer, larger steps (faster, but its final loss is that of a run with
            ~12x fewer optimizer steps, not comparable with the naive loop's).
* fast_rN   the same switches at N packed rows per step, with the learning rate scaled by the square
            root of how many more examples a step sees than a naive step (asked for by name).
            Suffixes: `_nogc` adds `disable_gradient_checkpointing: true` (the naive loop does not
            checkpoint either); `_lin` scales the learning rate linearly instead (fast_r4_nogc_lin).
Any path + `_nocudnn` (naive_nocudnn, fast_r4_nogc_nocudnn): the same run with PyTorch's cuDNN
attention backend turned off (`torch.backends.cuda.enable_cudnn_sdp(False)`), so SDPA takes another
kernel. The profile of 2026-11-30 showed cuDNN attention's per-shape set-up at 16-30 % of the CPU time.
A kit path + `+KEY=VALUE` ... sets TrainConfig fields on top (fast_r4_nogc+torch_compile=true,
fast+dataloader_num_workers=2); the record's path is the whole name.

Models are architectures from kit.memory.architectures with random weights (memory and speed do not
depend on the values), saved with the built-in model's tokenizer. Measured: real tokens per second
over the epoch (the Trainer's train_runtime; the naive loop's own wall time), the seconds per step
once warm (steady_s_per_step, from step steady_from_step on; first_steps_s before it), peak
torch.cuda.max_memory_allocated, the first and the final logged loss. Writes
<out>/train_throughput.json: [{model, path, real_tokens_per_s, peak_gib, first_loss, final_loss, gpu,
versions, ...}]. Targets (issue 11): fast >= 2.0x naive real tokens/s at <= 0.5x naive peak memory.
Not here: multi-GPU, flash-attention 2 (cannot be installed on the bench machine), QLoRA.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kit.env import source_commit  # noqa: E402  (each record names the commit it ran from)

MODELS = ["SmolLM2-135M", "Qwen2.5-0.5B", "Llama-3.2-1B"]
PATHS = ["naive", "kit", "fast"]
EXTRA_PATHS = ["fast_b16", "fast_eq", "fast_compiled"]  # asked for by name (--paths / --jobs)
DEMO = ["alpaca_en_demo", "alpaca_zh_demo", "identity", "glaive_toolcall_en_demo", "sharegpt_demo"]
RUN = dict(cutoff_len=1024, batch_size=16, lora_rank=16, lora_alpha=32, learning_rate=1e-4, logging_steps=10)
FAST = dict(torch_compile=True, disable_gradient_checkpointing=True, optim="adamw_torch_fused")
MIXED = "bench_mix"  # the demo sets, shuffled once into one file (mix_sources)
DATA_ORDER = "mixed-once"  # records before 2026-11-30 (fifth GPU session) have none: sources in order, then shuffled
SMOKE = dict(cutoff_len=256, batch_size=4, lora_rank=4, lora_alpha=8, learning_rate=1e-4, logging_steps=1)


def versions() -> dict:
    from kit.env import package_versions

    return package_versions(("torch", "transformers", "peft", "liger-kernel", "triton"), missing=None)


# ----------------------------------------------------------------------------------- preparation

def tokenizer_source(path: str | None) -> Path:
    """A folder holding the built-in model's tokenizer files."""
    if path:
        return Path(path)
    from kit import models

    return Path(models.resolve(models.BUILTIN))


def build_model_folder(arch_name: str, folder: Path, tokenizer_dir: Path, smoke: bool = False) -> Path:
    """A loadable model folder: the architecture's config with random bf16 weights + the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from kit.memory import architectures

    if (folder / "config.json").exists():
        return folder
    facts = architectures.lookup(arch_name)
    if smoke:  # two thin layers: runs on a CPU in seconds
        facts = architectures.replace(facts, num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=None)
    config = facts.to_hf_config()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, folder / name)
    return folder


def prepare_data(work: Path, tokenizer_dir: Path, cutoff_len: int, min_tokens: int, smoke: bool) -> dict:
    """dataset_info.json with the demo sets repeated until an epoch holds >= min_tokens real tokens."""
    from transformers import AutoTokenizer

    from kit import data, env, templates
    from kit.train import TrainConfig
    from kit.train.sft import encode_rows

    src = env.data_dir()
    info = json.loads((src / "dataset_info.json").read_text())
    names = ["identity"] if smoke else DEMO
    max_samples = 16 if smoke else None
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    template = templates.get("smollm2")

    def encode(names_text, folder, limit=max_samples):
        rows = data.load_dataset(names_text, dataset_dir=folder, stage="sft", max_samples=limit)
        return encode_rows(rows, tokenizer, template, TrainConfig(cutoff_len=cutoff_len))

    per_pass = sum(len(ids) for ids in encode(",".join(names), src)["input_ids"])
    repeats = max(1, math.ceil(min_tokens / per_pass))
    out = work / "data"
    out.mkdir(parents=True, exist_ok=True)
    bench_info, dataset = {}, []
    for name in names:
        entry = dict(info[name])
        shutil.copy(src / entry["file_name"], out / entry["file_name"])
        for k in range(repeats):
            bench_info[f"{name}__{k}"] = entry
            dataset.append(f"{name}__{k}")
    (out / "dataset_info.json").write_text(json.dumps(bench_info, indent=1))
    sources = encode(",".join(dataset), out)
    mixed = mix_sources(",".join(dataset), out, bench_info, max_samples)
    features = encode(mixed, out, None)  # exactly what every path trains on, in this order: its real tokens
    if sorted(map(tuple, features["input_ids"])) != sorted(map(tuple, sources["input_ids"])):
        raise SystemExit(f"{mixed}: the shuffled copy does not encode to the same examples as the demo sets")
    encoded = features["input_ids"]
    from kit.train.accel import pack_neat

    settings = SMOKE if smoke else RUN
    eq_len, eq_rows = equal_steps_row_length(features, cutoff_len, math.ceil(len(encoded) / settings["batch_size"]))
    return dict(dataset_dir=str(out), dataset=mixed, real_tokens=sum(len(ids) for ids in encoded),
                rows=len(encoded), repeats=repeats, max_samples=None,  # the mixed file holds only what is trained
                packed_rows=len(pack_neat(features, cutoff_len)["input_ids"]),
                eq_cutoff_len=eq_len, eq_packed_rows=eq_rows)


def mix_sources(names: str, folder: Path, info: dict, max_samples: int | None, seed: int = 42) -> str:
    """The demo sets' examples shuffled once (seed 42) into one ShareGPT file, registered as MIXED: the
    data order of every path. The naive loop takes its batches in this order and the kit's paths run
    with disable_shuffling, so a packed row holds about the examples of the naive batch at the same
    step (packing the sources in their own order would fill each row from one source)."""
    from kit import data
    from kit.data.tools import registry_entry, to_format, write_rows

    rows = data.load_dataset(names, dataset_dir=folder, stage="sft", max_samples=max_samples, verbose=False).to_list()
    random.Random(seed).shuffle(rows)
    path = write_rows(to_format(rows, "sharegpt"), folder / f"{MIXED}.json", overwrite=True)
    info[MIXED] = registry_entry(rows, "sharegpt", path.name)
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=1))
    return MIXED


def equal_steps_row_length(features: dict, cutoff_len: int, steps: int, multiple: int = 64) -> tuple[int, int]:
    """fast_eq: the shortest packed-row length (a multiple of `multiple`, at least cutoff_len) at which
    neat packing gives at most `steps` rows, and that number of rows: one row per step then makes as
    many optimizer steps as the naive loop, each holding about as many examples as a naive batch.
    Only valid when no example reaches cutoff_len (none was cut), else (cutoff_len, rows)."""
    from kit.train.accel import pack_neat

    longest = max(len(ids) for ids in features["input_ids"])
    length = cutoff_len
    rows = len(pack_neat(features, length)["input_ids"])
    if longest >= cutoff_len:
        return length, rows
    while rows > steps:
        length += multiple
        rows = len(pack_neat(features, length)["input_ids"])
    return length, rows


def equal_steps_batch(job: dict) -> int:
    """fast_compiled: neat-packed rows per step so that the run makes about as many optimizer steps as
    the naive loop (whose batches are batch_size examples): a loss curve comparable step by step."""
    naive_steps = math.ceil(job["rows"] / job["settings"]["batch_size"])
    return max(1, round(job["packed_rows"] / naive_steps))


# ----------------------------------------------------------------------------------- workers

class StepProfile:
    """torch.profiler over optimizer steps [start, start + steps) of a run; writes a text report.

    The report answers "where does a step's time go": wall seconds per step, GPU kernel time per step
    (how busy the GPU was), kernel launches per step, and the operators with the most self CPU and self
    CUDA time. The profiler slows the steps it watches, so a profiled run's throughput is not a result.
    """

    def __init__(self, start: int, steps: int, report: str | Path):
        self.start, self.steps, self.report = start, steps, Path(report)
        self.prof = None
        self.began = None

    def step_begins(self, index: int) -> None:
        import torch

        if index == self.start and self.steps > 0:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
                torch.cuda.synchronize()
            self.prof = torch.profiler.profile(activities=activities)
            self.prof.__enter__()
            self.began = time.perf_counter()

    def step_ended(self, index: int) -> None:
        """index: the number of the step that just ended (0-based)."""
        import torch

        if self.prof is None or index != self.start + self.steps - 1:
            return
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - self.began
        self.prof.__exit__(None, None, None)
        events = self.prof.key_averages()
        device_us = device_time_us(events)
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
        lines = [f"profiled optimizer steps {self.start}..{self.start + self.steps - 1} ({self.steps} steps)",
                 f"wall per step: {wall / self.steps * 1000:.1f} ms",
                 f"GPU kernel time per step: {device_us / 1000 / self.steps:.1f} ms "
                 f"({100 * device_us / 1e6 / wall:.0f} % of the wall time)",
                 f"kernel launches per step: {launches / self.steps:.0f}", "",
                 events.table(sort_by="self_cpu_time_total", row_limit=25)]
        if device_us:
            lines.append(events.table(sort_by="self_device_time_total", row_limit=15))
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines[:5]), flush=True)
        self.prof = None


def device_time_us(events) -> float:
    """The GPU's busy time in a profile: the self time of the device's own events (kernels, copies,
    sets), as the profiler's table totals it ("Self CUDA time total"). The CPU operators that launched
    them carry the same time again as their own self device time: summing every event counts each
    kernel twice (the reports written before 2026-11-30's sixth GPU session did; their tables' totals
    are right)."""
    from torch.autograd import DeviceType

    return sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA)


class SyncCount:
    """How often a step makes the CPU wait for the GPU: PyTorch's CUDA sync debug mode ("warn") over
    optimizer steps [start, start + steps), counting its "synchronizing CUDA operation" warnings (a
    `.item()`, a blocking copy, a tensor read in an `if`). A step that waits for the GPU cannot queue
    the next step's work meanwhile: each wait leaves the GPU idle while the CPU catches up. Only on CUDA."""

    def __init__(self, start: int = 50, steps: int = 10):
        self.start, self.steps = start, steps
        self.catcher = None
        self.caught: list = []
        self.per_step: float | None = None
        self.places: list[str] = []

    def step_begins(self, index: int) -> None:
        import warnings

        import torch

        if index != self.start or not torch.cuda.is_available():
            return
        self.catcher = warnings.catch_warnings(record=True)
        self.caught = self.catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def step_ended(self, index: int) -> None:
        import torch

        if self.catcher is None or index != self.start + self.steps - 1:
            return
        torch.cuda.set_sync_debug_mode("default")
        self.catcher.__exit__(None, None, None)
        self.catcher = None
        waits = [w for w in self.caught if "synchroniz" in str(w.message)]
        self.per_step = len(waits) / self.steps
        self.places = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in waits})
        print(f"host syncs per step (steps {self.start}..{index}): {self.per_step:g} at {', '.join(self.places)}",
              flush=True)

    def figures(self) -> dict:
        return {} if self.per_step is None else {"host_syncs_per_step": self.per_step}


class StepClock:
    """When each optimizer step ended (wall clock). `figures()` splits a run into its first steps
    (start-up: compilation, cache warm-up) and the steady steps after them, so a run whose first steps
    are slow (torch_compile) shows both what the whole run cost and what a step costs once warm."""

    def __init__(self):
        self.start = time.perf_counter()
        self.ends: list[float] = []

    def step_ended(self) -> None:
        self.ends.append(time.perf_counter())

    def figures(self, real_tokens: int | None = None) -> dict:
        """steady_s_per_step, first_steps_s; with the epoch's real tokens also steady_real_tokens_per_s
        (the real tokens of an average step over steady_s_per_step: the rate once warm)."""
        steps = len(self.ends)
        k0 = max(10, steps // 10)
        if steps <= k0 + 1:
            return {}
        steady = (self.ends[-1] - self.ends[k0 - 1]) / (steps - k0)
        figures = dict(steady_from_step=k0, steady_s_per_step=steady, first_steps_s=self.ends[k0 - 1] - self.start)
        if real_tokens:
            figures["steady_real_tokens_per_s"] = real_tokens / steps / steady
        return figures


def clock_callback(clock: StepClock):
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            clock.step_ended()

    return Callback()


def step_callback(watcher):
    """A per-step watcher (StepProfile, SyncCount: `step_begins(index)`, `step_ended(index)`, 0-based
    optimizer steps) as a transformers TrainerCallback (kit.train.run takes extra callbacks)."""
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            watcher.step_begins(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            watcher.step_ended(state.global_step - 1)

    return Callback()


def profile_name(model: str, path: str) -> str:
    """The profile report's file name: the path's `+KEY=VALUE` parts spelled with plain characters
    (the device tool returns no file whose name holds '+' or '=')."""
    return f"profile_{model}_{path.replace('+', '__').replace('=', '-')}.txt"


def job_profile(job: dict) -> StepProfile | None:
    if not job.get("profile_steps"):
        return None
    name = profile_name(Path(job["model_dir"]).name, job["path"])
    return StepProfile(job.get("profile_start", 10), job["profile_steps"], Path(job["profile_dir"]) / name)


def kit_config(job: dict):
    from kit.train import TrainConfig

    s = job["settings"]
    values = dict(model_name_or_path=job["model_dir"], template="smollm2", dataset=job["dataset"],
                  dataset_dir=job["dataset_dir"], cutoff_len=s["cutoff_len"], max_samples=job["max_samples"],
                  per_device_train_batch_size=s["batch_size"], gradient_accumulation_steps=1,
                  learning_rate=s["learning_rate"], num_train_epochs=1.0, lora_rank=s["lora_rank"],
                  lora_alpha=s["lora_alpha"], bf16=job["device"] == "cuda", logging_steps=s["logging_steps"],
                  save_strategy="no", report_to="none", plot_loss=False, output_dir=job["output_dir"],
                  overwrite_output_dir=True, disable_shuffling=True)  # the naive loop's order (mix_sources)
    path = base_path(job["path"])
    variant = fast_variant(path)
    if path in ("fast", "fast_b16", "fast_eq", "fast_compiled") or variant:
        values.update(enable_liger_kernel=True if job["device"] == "cuda" else "auto", neat_packing=True)
    if path == "fast_compiled":
        values.update(FAST, per_device_train_batch_size=equal_steps_batch(job))
    if path == "fast_eq":
        values.update(FAST, torch_compile_mode="reduce-overhead", per_device_train_batch_size=1,
                      cutoff_len=job["eq_cutoff_len"])
    if path == "fast":
        values.update({k: v for k, v in FAST.items() if k != "torch_compile"}, cuda_graphs=job["device"] == "cuda",
                      per_device_train_batch_size=1, cutoff_len=job["eq_cutoff_len"], logging_nan_inf_filter=False)
    if path in ("fast", "fast_eq", "fast_compiled") and job["device"] != "cuda":
        values.update(optim="adamw_torch")
    if variant:
        rows = variant["rows"]
        values.update(per_device_train_batch_size=rows,
                      learning_rate=scaled_learning_rate(job, rows, linear=variant["linear"]))
        if variant["nogc"]:
            values.update(disable_gradient_checkpointing=True)
    values.update(path_settings(job["path"]))
    return TrainConfig(**values)


FAST_VARIANT = re.compile(r"fast_r(?P<rows>[1-9]\d*)(?P<nogc>_nogc)?(?P<lin>_lin)?")


def fast_variant(path: str) -> dict | None:
    """fast_rN[_nogc][_lin]: N packed rows per step, checkpointing off (_nogc), linear learning-rate
    scaling (_lin); None for any other path."""
    match = FAST_VARIANT.fullmatch(path)
    if not match:
        return None
    return dict(rows=int(match["rows"]), nogc=bool(match["nogc"]), linear=bool(match["lin"]))


def base_path(path: str) -> str:
    """The path without its `+KEY=VALUE` settings and `_nocudnn` suffix (switches, not other paths)."""
    path = path.split("+", 1)[0]
    return path[: -len("_nocudnn")] if path.endswith("_nocudnn") else path


def cudnn_off(path: str) -> bool:
    return path.split("+", 1)[0].endswith("_nocudnn")


def path_settings(path: str) -> dict:
    """The TrainConfig fields a path's `+KEY=VALUE` parts set (values read as YAML: true, 2, 1e-4)."""
    import yaml

    from kit.train import TrainConfig
    from kit.train.config import ConfigError

    settings = {}
    for part in path.split("+")[1:]:
        key, sep, text = part.partition("=")
        if not sep or not key:
            raise SystemExit(f"path {path!r}: expected +KEY=VALUE, got +{part}")
        settings[key] = yaml.safe_load(text)
    try:
        config = TrainConfig.from_dict(settings)
    except (TypeError, ConfigError) as error:
        raise SystemExit(f"path {path!r}: {error}") from None
    if config.extra:
        raise SystemExit(f"path {path!r}: {sorted(config.extra)} are not kit settings")
    return settings


def fast_rows(path: str) -> int | None:
    """fast_rN...: the packed rows per step (None for any other path)."""
    variant = fast_variant(path)
    return variant["rows"] if variant else None


def scaled_learning_rate(job: dict, rows: int, linear: bool = False) -> float:
    """The naive loop's learning rate scaled by the square root (or, linear=True, the ratio) of how
    many more examples a step sees (N packed rows hold N * rows/packed_rows examples; a naive step
    holds batch_size): bigger steps, fewer of them, the same progress per example as far as the
    scaling rule holds."""
    ratio = rows * job["rows"] / job["packed_rows"] / job["settings"]["batch_size"]
    return job["settings"]["learning_rate"] * (ratio if linear else math.sqrt(ratio))


def run_kit(job: dict) -> dict:
    import torch

    from kit.train import run
    from kit.train.accel import use_gradient_checkpointing

    config = kit_config(job)
    cuda = job["device"] == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    profile = job_profile(job)
    clock, syncs = StepClock(), SyncCount()
    callbacks = [clock_callback(clock), step_callback(syncs)] + ([step_callback(profile)] if profile else [])
    result = run(config, device=job["device"], live_plot=False, callbacks=callbacks)
    losses = result.losses
    runtime = result.metrics["train_runtime"]  # seconds inside Trainer.train (data loading included)
    from kit.train.accel import compiled, cudnn_attention_off, liger_active, liger_kernels

    return dict(real_tokens_per_s=job["real_tokens"] / runtime, seconds=runtime, steps=result.global_step,
                **clock.figures(job["real_tokens"]), **syncs.figures(),
                logging_nan_inf_filter=config.logging_nan_inf_filter,
                rows_per_step=config.per_device_train_batch_size, row_length=config.cutoff_len,
                learning_rate=config.learning_rate,
                gradient_checkpointing=use_gradient_checkpointing(config, job["device"]),
                compiled=compiled(config), optim=config.optim, flash_attn=config.flash_attn,
                cuda_graphs=config.cuda_graphs, cuda_graph_replays=result.metrics.get("cuda_graph_replays"),
                liger_kernels=liger_kernels(config) if liger_active(config, job["device"]) else [],
                cudnn_sdp=cuda and not cudnn_off(job["path"]) and not cudnn_attention_off(config, job["device"]),
                peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                first_loss=losses[0], final_loss=losses[-1])


def run_naive(job: dict) -> dict:
    """The hand-written loop a learner would write first."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup

    from kit import data, templates
    from kit.train import TrainConfig
    from kit.train.sft import IGNORE_INDEX, encode_rows

    s, device = job["settings"], job["device"]
    cuda = device == "cuda"
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    rows = data.load_dataset(job["dataset"], dataset_dir=job["dataset_dir"], stage="sft", max_samples=job["max_samples"])
    feats = encode_rows(rows, tokenizer, templates.get("smollm2"), TrainConfig(cutoff_len=s["cutoff_len"]))
    order = list(range(len(feats["input_ids"])))  # the mixed file's order (mix_sources shuffled it once)
    torch.manual_seed(42)
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.bfloat16).to(device)
    lora = LoraConfig(r=s["lora_rank"], lora_alpha=s["lora_alpha"], lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lora)  # peft keeps the adapters in fp32 (autocast_adapter_dtype)
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s["learning_rate"], fused=cuda)
    batches = [order[i:i + s["batch_size"]] for i in range(0, len(order), s["batch_size"])]
    sched = get_cosine_schedule_with_warmup(opt, 0, len(batches))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    losses = []
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    profile = job_profile(job)
    clock, syncs = StepClock(), SyncCount()
    for index, batch in enumerate(batches):
        syncs.step_begins(index)
        if profile:
            profile.step_begins(index)
        width = max(len(feats["input_ids"][i]) for i in batch)
        ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), IGNORE_INDEX)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            n = len(feats["input_ids"][i])
            ids[row, :n] = torch.tensor(feats["input_ids"][i])
            labels[row, :n] = torch.tensor(feats["labels"][i])
            mask[row, :n] = 1
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        clock.step_ended()
        syncs.step_ended(index)
        if profile:
            profile.step_ended(index)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.time() - start
    window = s["logging_steps"]
    return dict(real_tokens_per_s=job["real_tokens"] / seconds, seconds=seconds, steps=len(batches),
                **clock.figures(job["real_tokens"]), **syncs.figures(), cudnn_sdp=cuda and not cudnn_off(job["path"]),
                peak_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                first_loss=losses[0], final_loss=sum(losses[-window:]) / len(losses[-window:]))


# ----------------------------------------------------------------------------------- driver

def launch(job: dict) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def collect(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return dict(status="timeout", note=f"killed after {timeout:.0f} s")
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return dict(status="ok", **json.loads(line[7:]))
    return dict(status="error", note=" | ".join(err.strip().splitlines()[-4:])[-600:])


def job_list(named: list[str] | None, models: list[str], paths: list[str]) -> list[tuple[str, str]]:
    """(model, path) pairs: the named MODEL/PATH jobs in their order, else every model x path."""
    if not named:
        return [(model, path) for model in models for path in paths]
    jobs = []
    for text in named:
        model, _, path = text.rpartition("/")
        base = base_path(path)
        if (base not in PATHS + EXTRA_PATHS and not fast_rows(base)) or not model:
            raise SystemExit(f"--jobs {text!r}: expected MODEL/PATH with PATH one of {PATHS + EXTRA_PATHS} "
                             "or fast_rN[_nogc][_lin] (N packed rows per step), each optionally + _nocudnn, "
                             "and a kit path optionally +KEY=VALUE")
        if "+" in path and base == "naive":
            raise SystemExit(f"--jobs {text!r}: +KEY=VALUE sets kit settings; the naive loop has none")
        path_settings(path)
        jobs.append((model, path))
    return jobs


def replace_records(earlier: list[dict], new: list[dict]) -> list[dict]:
    """The earlier records, each (model, path) measured now replaced in place; new ones appended. A job
    skipped now (deadline) keeps its earlier record, if there is one."""
    earlier, new = migrated(earlier), migrated(new)
    known = {(r["model"], r["path"]) for r in earlier}
    fresh = {(r["model"], r["path"]): r for r in new
             if r.get("status") != "skipped" or (r["model"], r["path"]) not in known}
    kept = []
    for r in earlier:
        now = fresh.pop((r["model"], r["path"]), None)
        if now is None:
            kept.append(r)
        elif r.get("status") == "ok" and now.get("status") == "ok" and reading(now) != reading(r):
            # a new measurement (a merged file also carries the records it did not re-measure): the
            # earlier one stays readable
            kept.append(dict(now, earlier_readings=[*r.get("earlier_readings", []), reading(r)]))
        else:
            kept.append(now)
    return kept + list(fresh.values())


READING_KEYS = ("real_tokens_per_s", "peak_gib", "first_loss", "final_loss", "steps", "seconds", "date", "beside",
                "commit", "gpu", "data_order", "steady_real_tokens_per_s", "steady_s_per_step", "first_steps_s",
                "steady_from_step")


def reading(record: dict) -> dict:
    """A record's measurement, as kept in `earlier_readings` when the same job is measured again (a
    ratio is only meaningful against the naive loop measured under the same conditions)."""
    return {k: record[k] for k in READING_KEYS if k in record}


def migrated(records: list[dict]) -> list[dict]:
    """Records written before the fast path was step-matched (2026-11-30): a "fast" record that ran
    without recording rows_per_step ran at batch_size packed rows per step, the path now called fast_b16
    (a skipped job's record ran nothing and stays as it is). A fast_cg record with Liger's fused
    cross-entropy ran before fast_cg switched to the plain one: fast_cg_flce; one with Liger's plain
    cross-entropy ran before fast_cg stopped waiting for the GPU each step: fast_cg_lce; the rest of
    fast_cg became "fast" in the sixth GPU session, and the compiled "fast" records before it (and
    their `fast+KEY=VALUE` variants; none carries logging_nan_inf_filter) became fast_compiled."""
    out = []
    for r in records:
        if r["path"] == "fast" and "rows_per_step" not in r and r.get("steps"):  # it ran, at batch_size rows
            r = dict(r, path="fast_b16", renamed_from="fast")
        elif r["path"] == "fast" and "rows_per_step" in r and "compiled" not in r:  # Liger + neat packing only, eager, checkpointing
            r = dict(r, path="fast_eager_gc", renamed_from="fast")
        elif r["path"] == "fast_cg" and "fused_linear_cross_entropy" in r.get("liger_kernels", []):
            r = dict(r, path="fast_cg_flce", renamed_from="fast_cg")  # before fast_cg took Liger's plain cross-entropy
        elif r["path"] == "fast_cg" and "cross_entropy" in r.get("liger_kernels", []):
            r = dict(r, path="fast_cg_lce", renamed_from="fast_cg")  # before fast_cg stopped waiting on the GPU
        elif r["path"] == "fast_cg":
            r = dict(r, path="fast", renamed_from="fast_cg")  # the fast path since the sixth GPU session
        elif base_path(r["path"]) == "fast" and "logging_nan_inf_filter" not in r and r.get("steps"):
            r = dict(r, path="fast_compiled" + r["path"][len("fast"):], renamed_from=r["path"])  # compiled
        out.append(r)
    return out


def baseline(records: list[dict], record: dict) -> dict | None:
    """The naive loop's reading that `record` is compared with (kit.bench_records.throughput_baseline:
    the one measured beside it, in the same call); lesson 12 reads the file with the same function."""
    from kit.bench_records import throughput_baseline

    return throughput_baseline(records, record)


TABLE_PATHS = {"naive": "naive", "kit": "kit", "fast_b16": "fast_b16", "fast_eager_gc": "fast_eager_gc",
               "fast_compiled+torch_compile=false": "eager", "fast_compiled": "compiled",
               "fast_compiled+torch_compile_mode=reduce-overhead": "compiled, CUDA graphs",
               "fast_cg_flce": "fast_cg_flce", "fast_cg_lce": "fast_cg_lce", "fast": "fast"}


def markdown_table(records: list[dict]) -> str:
    """The README's table: every model's measured paths (TABLE_PATHS, in that order), each ratio against
    its own baseline reading."""
    lines = ["| model | path | steps | real tokens/s | steady | peak GiB | speed / memory vs naive | loss first → final |",
             "|---|---|---|---|---|---|---|---|"]
    ok = {(r["model"], r["path"]): r for r in records if r.get("status") == "ok"}
    for model in dict.fromkeys(r["model"] for r in records):
        for path, label in TABLE_PATHS.items():
            r = ok.get((model, path))
            if r is None:
                continue
            naive = r if path == "naive" else baseline(records, r)
            steady = f"{r['steady_real_tokens_per_s']:,.0f}" if r.get("steady_real_tokens_per_s") else ""
            lines.append(f"| {model} | {label} | {r['steps']} | {r['real_tokens_per_s']:,.0f} | {steady} | "
                         f"{r['peak_gib']:.2f} | {r['real_tokens_per_s'] / naive['real_tokens_per_s']:.2f}x / "
                         f"{r['peak_gib'] / naive['peak_gib']:.2f}x | {r['first_loss']:.3f} → {r['final_loss']:.3f} |")
    return "\n".join(lines)


def summarize(records: list[dict]) -> str:
    lines = [f"{'model':14s} {'path':8s} {'steps':>5s} {'tok/s':>9s} {'peak GiB':>9s} {'first':>7s} {'final':>7s}  vs naive"]
    for r in records:
        naive = baseline(records, r)
        ratio = ""
        if naive and r.get("status") == "ok" and r["path"] != "naive":
            ratio = f"{r['real_tokens_per_s'] / naive['real_tokens_per_s']:.2f}x speed"
            if r.get("peak_gib") and naive.get("peak_gib"):
                ratio += f", {r['peak_gib'] / naive['peak_gib']:.2f}x memory"
        if r.get("status") != "ok":
            lines.append(f"{r['model']:14s} {r['path']:8s} {r.get('status')}: {r.get('note', '')[:160]}")
            continue
        lines.append(f"{r['model']:14s} {r['path']:8s} {r.get('steps') or 0:5d} {r['real_tokens_per_s']:9.0f} {r['peak_gib'] or 0:9.2f} "
                     f"{r['first_loss']:7.3f} {r['final_loss']:7.3f}  {ratio}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--work", default="/tmp/kit_train_throughput", help="models, data and run folders")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--paths", nargs="*", default=PATHS)
    parser.add_argument("--min-tokens", type=int, default=500_000, help="real tokens in the epoch")
    parser.add_argument("--tokenizer", help="folder with the built-in tokenizer (default: the kit's cache)")
    parser.add_argument("--smoke", action="store_true", help="CPU-sized: tiny models, few tokens")
    parser.add_argument("--deadline", type=float, default=1e9, help="seconds; no new job starts after")
    parser.add_argument("--job-timeout", type=float, default=600.0)
    parser.add_argument("--merge", nargs="*", help="merge these result files into <out>/train_throughput.json")
    parser.add_argument("--jobs", nargs="*", help="MODEL/PATH ...: these jobs only, in this order")
    parser.add_argument("--update", action="store_true",
                        help="keep <out>/train_throughput.json's other records; jobs run now replace theirs")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="profile this many optimizer steps of each job (torch.profiler); writes "
                             "<out>/profile_<model>_<path>.txt. Profiled timings are not results: use another --out")
    parser.add_argument("--profile-start", type=int, default=10, help="the first profiled optimizer step")
    parser.add_argument("--table", action="store_true", help="print <out>/train_throughput.json as the README's "
                        "markdown table and stop")
    parser.add_argument("--beside", help="what else ran on the machine meanwhile (recorded with each job)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        job = json.loads(args.worker)
        if cudnn_off(job["path"]):
            import torch

            torch.backends.cuda.enable_cudnn_sdp(False)
        result = run_naive(job) if base_path(job["path"]) == "naive" else run_kit(job)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    out = Path(args.out)
    if args.profile and (args.update or out.resolve() == (ROOT / "bench" / "results").resolve()):
        parser.error("--profile slows the steps it watches: write to another --out, without --update")
    out.mkdir(parents=True, exist_ok=True)
    results = out / "train_throughput.json"
    earlier = json.loads(results.read_text()) if args.update and results.exists() else []
    if args.table:
        print(markdown_table(json.loads(results.read_text())))
        return 0
    if args.merge is not None:  # with --update: each file's records replace the earlier ones, in order
        records = migrated(earlier)  # (--update --merge with no file: only the renames of `migrated`)
        for f in args.merge:
            if Path(f).exists():
                found = json.loads(Path(f).read_text())
                records = replace_records(records, found) if args.update else records + found
        results.write_text(json.dumps(records, indent=1) + "\n")
        print(summarize(records))
        return 0

    import torch

    start = time.time()
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)"
    settings = SMOKE if args.smoke else RUN
    work = Path(args.work)
    tok = tokenizer_source(args.tokenizer)
    prep = prepare_data(work, tok, settings["cutoff_len"], 2_000 if args.smoke else args.min_tokens, args.smoke)
    print(f"data: {prep['rows']} rows, {prep['real_tokens']:,} real tokens per epoch "
          f"({prep['repeats']} passes over the demo sets)", flush=True)
    jobs = job_list(args.jobs, args.models, args.paths)
    records = []
    for model, path in jobs:
        folder = build_model_folder(model, work / "models" / model, tok, args.smoke)
        record = dict(model=model, path=path, gpu=gpu, versions=versions(), commit=source_commit(),
                      real_tokens=prep["real_tokens"], data_order=DATA_ORDER,
                      rows=prep["rows"], packed_rows=prep["packed_rows"], date=time.strftime("%Y-%m-%d"),
                      **{k: v for k, v in settings.items()})
        if args.beside:
            record["beside"] = args.beside
        if args.profile:
            record["profiled_steps"] = args.profile
        if time.time() - start > args.deadline:
            record.update(status="skipped", note="deadline reached before this job started")
        else:
            job = dict(path=path, device=device, model_dir=str(folder), settings=settings,
                       output_dir=str(work / "runs" / f"{model}_{path}"), profile_steps=args.profile,
                       profile_start=args.profile_start, profile_dir=str(out), **prep)
            record.update(collect(launch(job), args.job_timeout))
        records.append(record)
        print(summarize([r for r in records if r["model"] == model]).splitlines()[-1], flush=True)
        results.write_text(json.dumps(replace_records(earlier, records), indent=1) + "\n")
    print(summarize(replace_records(earlier, records)))
    print(f"wall time {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
