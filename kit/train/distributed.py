"""Several processes, one run: DDP, FSDP and DeepSpeed ZeRO through the transformers Trainer.

The engine is not ours: `torchrun` (torch.distributed) or `accelerate launch` starts N copies of
`python -m kit train CONFIG.yaml`; accelerate's `PartialState` joins them into one process group
(NCCL on GPUs, gloo on CPU); the Trainer wraps the model in DDP, FSDP2 (`fsdp: full_shard auto_wrap`)
or DeepSpeed (`deepspeed: ds_z3_config.json`, LLaMA-Factory's argument). This module only

* launches:  `python -m kit train --nproc N CONFIG.yaml` -> `torchrun --standalone --nproc_per_node N
  -m kit train CONFIG.yaml` (`launch_command`, `launch`), after checking what would fail on every
  rank (`check_launch`: deepspeed missing, more processes than rows, more processes than GPUs);
* keeps one writer: only rank 0 prepares output_dir, prints, plots and writes files; the others stay
  quiet (`setup`, `is_main_process`, `prepare_output_dir`);
* maps the config's `deepspeed` / `fsdp` fields to TrainingArguments (`training_arguments`);
* runs a config from a notebook on N processes, streaming rank 0's output into the cell
  (`notebook_run`). It starts a subprocess launcher rather than `accelerate.notebook_launcher`:
  that one forks the kernel, which needs CUDA untouched and no threads (tokenizers, datasets), and
  cannot use gloo's CPU processes as reliably as separate interpreters.

    python -m kit train --nproc 2 run.yaml                        # the kit launches torchrun
    torchrun --nproc_per_node 2 -m kit train run.yaml             # the same, by hand
    accelerate launch --num_processes 2 -m kit train run.yaml     # or through accelerate
    result = kit.train.distributed.notebook_run(config, nproc=2)  # from a notebook

Global batch = nproc x per_device_train_batch_size x gradient_accumulation_steps (as in LLaMA-Factory).
Not here: several machines (use torchrun/accelerate's own multi-node options), pipeline/tensor parallel.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

from kit import env
from kit.train.config import ConfigError, TrainConfig

DEEPSPEED_DIR = "examples/deepspeed"   # the JSON files shipped with the kit (LLaMA-Factory: examples/deepspeed)
FSDP_OPTIONS = ("full_shard", "shard_grad_op", "hybrid_shard", "hybrid_shard_zero2", "no_shard", "offload",
                "auto_wrap")


class LaunchError(RuntimeError):
    """A multi-process launch that cannot work: the message says what and how to fix it."""


# ------------------------------------------------------------------------------- who am I

def world_size() -> int:
    """Processes in this run (torchrun/accelerate set WORLD_SIZE; 1 when started plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single-process run): the one that prints and writes."""
    return rank() == 0


def setup(device: str) -> str:
    """Join the process group (accelerate's PartialState: NCCL on CUDA, gloo on CPU) when launched
    with several processes, silence the other ranks, and return this process's device."""
    if not is_distributed():
        return device
    if device.startswith("cuda"):
        device = f"cuda:{local_rank()}"
        import torch

        torch.cuda.set_device(device)
    from accelerate import PartialState

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # training_arguments sets ddp_broadcast_buffers=False, which transformers hands to DDP as
    # broadcast_buffers; torch >= 2.13 calls it forward_sync_buffers and warns, but transformers has no
    # way to pass the new name yet. The old one still works, and it also skips the initial buffer sync,
    # which changes nothing here: every rank computes the same RoPE buffers.
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    PartialState(cpu=device == "cpu")  # initialises torch.distributed from torchrun's environment
    quiet_other_ranks()
    return device


def quiet_other_ranks() -> None:
    """On ranks other than 0: no warnings, no progress bars (one copy of every message: rank 0's)."""
    if is_main_process():
        return
    warnings.simplefilter("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    import datasets

    datasets.disable_progress_bars()


def cleanup() -> None:
    """Leave the process group (avoids torch's 'process group was not destroyed' warning at exit)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def prepare_output_dir(prepare, config: TrainConfig, overwrite: bool, resume):
    """Run `prepare(config, overwrite, resume)` (the runner's output_dir check) on rank 0 only and
    hand its answer (the checkpoint to resume from) or its error to every rank."""
    if not is_distributed():
        return prepare(config, overwrite, resume)
    import torch.distributed as dist

    box = [None, None]
    if is_main_process():
        try:
            box[0] = prepare(config, overwrite, resume)
        except (FileExistsError, FileNotFoundError, ConfigError) as err:
            box[1] = (type(err).__name__, str(err))
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        kind, message = box[1]
        raise {"FileExistsError": FileExistsError, "FileNotFoundError": FileNotFoundError}.get(
            kind, ConfigError)(message)
    return box[0]


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------------- config -> Trainer

def resolve_deepspeed(path: str) -> Path:
    """A DeepSpeed JSON: the path as given (relative to the current folder), else a file of the kit's
    examples/deepspeed folder (so `deepspeed: ds_z3_config.json` works from anywhere)."""
    candidates = [Path(path).expanduser(), env.repo_root() / path, env.repo_root() / DEEPSPEED_DIR / Path(path).name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    shipped = ", ".join(sorted(p.name for p in (env.repo_root() / DEEPSPEED_DIR).glob("*.json")))
    raise ConfigError(f"field 'deepspeed' = {path!r}: no such file (looked in the current folder and "
                      f"{DEEPSPEED_DIR}/); the kit ships {shipped}")


def check_fsdp(value: str) -> list[str]:
    options = value.split()
    for option in options:
        if option not in FSDP_OPTIONS:
            import difflib

            near = difflib.get_close_matches(option, FSDP_OPTIONS, n=1)
            raise ConfigError(f"field 'fsdp' = {value!r}: unknown option {option!r}"
                              f"{f' (did you mean {near[0]!r}?)' if near else ''}; known: {', '.join(FSDP_OPTIONS)}")
    return options


def training_arguments(config: TrainConfig, device: str) -> dict:
    """The TrainingArguments keys for DeepSpeed / FSDP / DDP on CPU (merged into the runner's)."""
    args = {}
    if config.deepspeed:
        args["deepspeed"] = str(resolve_deepspeed(config.deepspeed))
    if config.fsdp:
        args["fsdp"] = " ".join(check_fsdp(config.fsdp))
        if config.fsdp_config:
            args["fsdp_config"] = config.fsdp_config
    if is_distributed():
        args["ddp_backend"] = "gloo" if device == "cpu" else "nccl"
        if config.finetuning_type != "full":
            args["ddp_find_unused_parameters"] = False  # frozen weights have no gradient by design
        if not config.deepspeed and not config.fsdp:
            # DDP broadcasts rank 0's buffers before every forward, a collective that makes each rank wait for
            # the other at every micro-batch. A causal LM's buffers (RoPE's inverse frequencies) are computed
            # the same on every rank and never trained: nothing to send. bench/multi_gpu.py: 1.5B LoRA on
            # 2 H200s went from 1.65x one GPU to 2.04x without it (and logging_nan_inf_filter off).
            args["ddp_broadcast_buffers"] = False
    return args


# ------------------------------------------------------------------------------- checks

def check_launch(config: TrainConfig, nproc: int, num_rows: int | None = None, device: str | None = None) -> None:
    """Raise LaunchError for a launch that cannot work, before N processes start (and again on
    every rank, for launches by hand)."""
    if nproc < 1:
        raise LaunchError(f"--nproc {nproc}: expected a number of processes >= 1")
    if config.deepspeed:
        resolve_deepspeed(config.deepspeed)
        if importlib.util.find_spec("deepspeed") is None:
            raise LaunchError(f"field 'deepspeed' = {config.deepspeed!r} needs the deepspeed package, which is not "
                              f"installed: pip install deepspeed (CUDA machines), or remove 'deepspeed' for "
                              f"plain data parallel (DDP)")
        if (device or env.pick_device()) == "cpu":
            raise LaunchError(f"field 'deepspeed' = {config.deepspeed!r}: DeepSpeed ZeRO needs CUDA GPUs; on CPU "
                              f"remove 'deepspeed' (DDP over gloo works on CPU)")
    if config.fsdp:
        check_fsdp(config.fsdp)
    if num_rows is not None and num_rows < nproc:
        raise LaunchError(f"{nproc} processes but dataset {config.dataset!r} has only {num_rows} training row(s) "
                          f"(after max_samples/val_size): every process needs at least one row; use "
                          f"--nproc {max(num_rows, 1)} or more data")
    device = device or env.pick_device()
    if device.startswith("cuda") and nproc > 1:
        import torch

        if nproc > torch.cuda.device_count():
            raise LaunchError(f"--nproc {nproc} but this machine has {torch.cuda.device_count()} GPU(s): "
                              f"one process per GPU")


# ------------------------------------------------------------------------------- launching

def launch_command(config_path: str | Path, nproc: int, train_args: list[str] | None = None) -> list[str]:
    """The torchrun command that runs `python -m kit train CONFIG` on nproc processes of this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "--local-ranks-filter=0",  # show rank 0's output only (the others print nothing of their own)
            "-m", "kit", "train", str(config_path), *(train_args or [])]


def _child_env(nproc: int) -> dict:
    environ = dict(os.environ)
    # torchrun would set 1 thread per process with a warning; say it ourselves, sharing the cores
    environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = str(env.repo_root())
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, environ.get("PYTHONPATH")) if p)
    return environ


def preflight(config: TrainConfig, nproc: int) -> None:
    """check_launch with the training rows counted (loads the data only, not the model)."""
    from kit.train.runner import load_rows

    config.validate()
    check_launch(config, nproc)  # cheap checks first
    train_rows, _ = load_rows(config)
    check_launch(config, nproc, num_rows=len(train_rows))


def launch(config_path: str | Path, nproc: int, train_args: list[str] | None = None,
           config: TrainConfig | None = None, stream=None) -> int:
    """Check, then run `python -m kit train CONFIG` on nproc processes; return torchrun's exit status.
    `stream(line)` receives the output line by line (default: this process's stdout)."""
    if config is None:
        config = TrainConfig.from_yaml(config_path)
    preflight(config, nproc)
    command = launch_command(config_path, nproc, train_args)
    process = subprocess.Popen(command, env=_child_env(nproc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    try:
        for line in process.stdout:
            (stream or _print)(line)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
        raise


def _print(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def notebook_run(config: TrainConfig, nproc: int = 2, *, overwrite_output_dir: bool | None = None,
                 resume: bool = False, stream=None):
    """Train `config` on nproc processes from a notebook (or any Python): writes the config next to
    its output_dir, launches torchrun, streams rank 0's progress into the cell and returns the
    TrainResult that rank 0 saved. Raises LaunchError for a bad launch, RuntimeError if a rank failed."""
    from kit.train.runner import TrainResult

    config.validate()
    out = Path(config.output_dir)
    config_path = out.parent / f"{out.name}.launch.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config.to_yaml(config_path)
    overwrite = config.overwrite_output_dir if overwrite_output_dir is None else overwrite_output_dir
    args = (["--overwrite"] if overwrite else []) + (["--resume"] if resume else [])
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        (stream or _print)(line)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the child processes report; the saved YAML's extra keys are known
        status = launch(config_path, nproc, args, config=config, stream=keep)
    if status not in (0, 130):
        errors = "".join(line for line in lines if line.startswith("error:"))  # the kit's own message first
        tail = "".join(lines[-15:])
        raise RuntimeError(f"the {nproc}-process run failed (exit status {status}): {errors or 'last lines:'}\n{tail}")
    return TrainResult.load(out) if status == 0 else None


def describe(config: TrainConfig, nproc: int) -> dict:
    """What a launch would do: processes, global batch, engine (for lessons and panels)."""
    engine = "deepspeed" if config.deepspeed else "fsdp" if config.fsdp else "ddp" if nproc > 1 else "single"
    if config.deepspeed:
        try:
            zero = json.loads(resolve_deepspeed(config.deepspeed).read_text()).get("zero_optimization", {})
            engine = f"deepspeed zero{zero.get('stage', 0)}"
        except (ConfigError, ValueError):
            pass
    return {"nproc": nproc, "engine": engine,
            "global_batch": nproc * config.per_device_train_batch_size * config.gradient_accumulation_steps}
