"""Where things live and which mode we run in: quick mode, cache and work folders, device and dtype.

Everything that depends on the machine or on an environment variable is decided here, once, so the
rest of the kit (and every notebook) asks this module instead of reading os.environ itself.

Environment variables (all optional):
    KIT_QUICK=1        quick mode: few steps, short sequences (CI and `python -m kit course --quick`).
    KIT_CACHE_DIR      where converted models are cached (default ~/.cache/llm-course-kit).
    KIT_WORK_DIR       where lessons write runs, adapters and exports (default <repo>/work).
    KIT_DEVICE         force a device: cpu, cuda, cuda:1, mps.
    KIT_DTYPE          force a dtype: float32, bfloat16, float16.
    HF_ENDPOINT, HF_HUB_OFFLINE  where the Hugging Face hub is, and whether to try it (hub_reachable).
Not here: anything that touches a model or a widget.
"""
from __future__ import annotations

import os
import platform
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}


def is_quick() -> bool:
    """True when KIT_QUICK is set to 1/true/yes/on (the one switch for quick mode)."""
    return os.environ.get("KIT_QUICK", "").strip().lower() in _TRUE


def pick(quick: T, full: T) -> T:
    """Return `quick` in quick mode and `full` otherwise: `max_steps = kit.env.pick(3, 200)`."""
    return quick if is_quick() else full


def mode_banner() -> str:
    """One line a notebook prints so the reader knows which mode it runs in."""
    if is_quick():
        return "QUICK mode (KIT_QUICK=1): few steps and short sequences; numbers are illustrative."
    return "FULL mode: the real lesson settings (set KIT_QUICK=1 for a fast smoke run)."


def repo_root() -> Path:
    """The repository folder (the one holding pyproject.toml and data/)."""
    env = os.environ.get("KIT_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "pyproject.toml").exists() and (parent / "kit").is_dir():
            return parent
    return Path.cwd()


def data_dir() -> Path:
    """The demo data folder with dataset_info.json."""
    return repo_root() / "data"


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def cache_dir() -> Path:
    """Model cache (outside the repo): KIT_CACHE_DIR or ~/.cache/llm-course-kit."""
    env = os.environ.get("KIT_CACHE_DIR")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "llm-course-kit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def work_dir() -> Path:
    """Where lessons write their runs (git-ignored): KIT_WORK_DIR or <repo>/work."""
    env = os.environ.get("KIT_WORK_DIR")
    path = Path(env).expanduser() if env else repo_root() / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give `path` (a file, or a folder and everything in it) the permissions that open() and mkdir would
    have given it under the process umask: folders 0777 and files 0666 minus the umask.

    The kit writes weights through safetensors, which creates its files 0600, and stages folders with
    mkdtemp (0700). On a shared lab machine (a teacher's shared KIT_CACHE_DIR, an export handed to a
    colleague) other users could then not read them. Only call it on what the kit itself wrote."""
    mask = current_umask()
    path = Path(path)
    items = [path] + (sorted(path.rglob("*")) if path.is_dir() else [])
    for item in items:
        if item.is_symlink():
            continue
        item.chmod((0o777 if item.is_dir() else 0o666) & ~mask)


# Library notices the kit's own calls would otherwise print into every lesson (quiet outputs):
QUIET_LOGGERS = (
    # bitsandbytes' CPU backend tries to fetch a hub kernel ("kernels-community/...") on CPUs with
    # AVX512-BF16 and logs a warning when the optional `kernels` package is absent; its own CPU code runs
    "bitsandbytes.backends.cpu.ops",
)
QUIET_WARNINGS = (
    # peft reads model.is_gradient_checkpointing, which transformers 5.x deprecates
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)


def quiet_libraries() -> None:
    """Silence the known library notices above (idempotent). kit.models.load calls it; nothing else
    is filtered, so a new warning still shows."""
    import logging
    import warnings

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def hub_endpoint() -> str:
    """The Hugging Face endpoint: HF_ENDPOINT or https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set to 1/true/yes/on."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face endpoint accepts a TCP connection within `timeout` seconds.

    HF_HUB_OFFLINE=1 answers False at once. The name lookup and the connection both run in a
    helper thread that we wait on for at most `timeout` s, because a stuck DNS resolver ignores
    socket timeouts."""
    if hub_offline():
        return False
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    answer = []

    def probe():
        try:
            with socket.create_connection((url.hostname, port), timeout=timeout):
                answer.append(True)
        except (OSError, ValueError):
            answer.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def pick_device(device: str | None = None) -> str:
    """cuda if available, else mps, else cpu; `device` or KIT_DEVICE overrides."""
    import torch

    choice = device or os.environ.get("KIT_DEVICE")
    if choice:
        return choice
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str | None = None, dtype=None):
    """The compute dtype for a device: CUDA bf16 where supported else fp16; MPS fp16; CPU fp32.

    `dtype` (a torch.dtype or a name such as "bfloat16") or KIT_DTYPE overrides.
    """
    import torch

    choice = dtype or os.environ.get("KIT_DTYPE")
    if choice is not None:
        if isinstance(choice, torch.dtype):
            return choice
        name = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16"}.get(
            str(choice), str(choice)
        )
        value = getattr(torch, name, None)
        if not isinstance(value, torch.dtype):
            raise ValueError(f"dtype {choice!r} is not a torch dtype; use float32, bfloat16 or float16")
        return value
    device = pick_device(device)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


@dataclass
class EnvReport:
    python: str
    platform: str
    device: str
    dtype: str
    quick: bool
    versions: dict
    cache_dir: str
    work_dir: str

    def __str__(self) -> str:
        lines = [
            f"python     {self.python} on {self.platform}",
            f"device     {self.device} (compute dtype {self.dtype})",
            f"mode       {'quick' if self.quick else 'full'}",
            f"cache_dir  {self.cache_dir}",
            f"work_dir   {self.work_dir}",
        ]
        lines += [f"{name:<13}{version}" for name, version in self.versions.items()]
        return "\n".join(lines)


PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "bitsandbytes", "accelerate",
            "gguf", "ipywidgets", "matplotlib", "jupyterlab")


def source_commit() -> str | None:
    """The kit's commit this code runs from: $KIT_COMMIT (a copy of the tree without .git, as on a
    lent GPU machine, is told it), else `git rev-parse HEAD` in the repository, else None. Benchmark
    results record it, so a figure names the code that produced it."""
    import subprocess

    if os.environ.get("KIT_COMMIT"):
        return os.environ["KIT_COMMIT"]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def package_versions(names=PACKAGES, missing: str | None = "MISSING") -> dict[str, str | None]:
    """{package: installed version} for `names` (distribution names, e.g. "liger-kernel"); a package
    that is not installed gets `missing`. Benchmarks write this next to their figures."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions


def report() -> EnvReport:
    """What this machine has: Python, device, dtype, mode, folders and library versions."""
    versions = package_versions()
    device = pick_device()
    return EnvReport(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        device=device,
        dtype=str(pick_dtype(device)).replace("torch.", ""),
        quick=is_quick(),
        versions=versions,
        cache_dir=str(cache_dir()),
        work_dir=str(work_dir()),
    )
