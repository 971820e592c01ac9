"""Which checkpoint to resume from: the newest COMPLETE one.

A kill while the Trainer writes `checkpoint-N/` leaves a folder with some files missing or cut
short; resuming from it crashes minutes later. `last_complete_checkpoint(output_dir)` walks the
`checkpoint-N` folders from the newest down and returns the first whose parts are all present and
readable (cheap checks, no tensors loaded):

    model       model.safetensors / adapter_model.safetensors (or sharded, or .bin): the safetensors
                header parses and the file is as long as the header says
    optimizer   optimizer.pt: a complete torch zip file (its central directory reads)
    scheduler   scheduler.pt: the same
    state       trainer_state.json: JSON with a global_step

Each skipped folder is reported (a warning naming it and what is wrong) and renamed to
`checkpoint-N.incomplete` (never deleted), so the Trainer does not write into it again when the
run passes step N.
"""
from __future__ import annotations

import json
import re
import struct
import warnings
import zipfile
from pathlib import Path

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
MODEL_FILES = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json",
               "adapter_model.bin", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _safetensors_problem(path: Path) -> str | None:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return f"{path.name} is cut short (header says {header_len} bytes, file has {size})"
            header = json.loads(f.read(header_len))
    except (OSError, struct.error, ValueError) as exc:
        return f"{path.name} is not a readable safetensors file ({exc.__class__.__name__})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end > size:
        return f"{path.name} is cut short ({size} of {8 + header_len + end} bytes)"
    return None


def _zip_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        return f"{path.name} is not a complete torch file ({exc.__class__.__name__})"
    return None


def checkpoint_problems(folder) -> list[str]:
    """What is missing or broken in a checkpoint folder ([] = complete)."""
    folder = Path(folder)
    problems = []
    models = [folder / name for name in MODEL_FILES if (folder / name).exists()]
    if not models:
        problems.append("no model weights (model.safetensors or adapter_model.safetensors)")
    for path in models:
        if path.name.endswith(".index.json"):
            try:
                shards = set(json.loads(path.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError):
                problems.append(f"{path.name} is not a readable index")
                continue
            for shard in sorted(shards):
                shard_path = folder / shard
                if not shard_path.exists():
                    problems.append(f"{shard} is missing")
                elif shard.endswith(".safetensors") and (p := _safetensors_problem(shard_path)):
                    problems.append(p)
        elif path.suffix == ".safetensors" and (p := _safetensors_problem(path)):
            problems.append(p)
        elif path.suffix == ".bin" and (p := _zip_problem(path)):
            problems.append(p)
    for name in ("optimizer.pt", "scheduler.pt"):
        path = folder / name
        if not path.exists():
            problems.append(f"{name} is missing")
        elif p := _zip_problem(path):
            problems.append(p)
    state = folder / "trainer_state.json"
    try:
        if "global_step" not in json.loads(state.read_text()):
            problems.append("trainer_state.json has no global_step")
    except FileNotFoundError:
        problems.append("trainer_state.json is missing")
    except (OSError, ValueError):
        problems.append("trainer_state.json is not valid JSON")
    return problems


def checkpoints(output_dir) -> list[Path]:
    """The checkpoint-N folders of a run, newest (highest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT.match(p.name).group(1)), reverse=True)


def _set_aside(folder: Path) -> Path:
    target = folder.with_name(folder.name + ".incomplete")
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}.incomplete{n}")
    folder.rename(target)
    return target


def last_complete_checkpoint(output_dir, set_aside: bool = True) -> str | None:
    """The newest complete checkpoint-N folder of `output_dir` (None if there is none). Newer
    incomplete ones are reported in a warning and, with `set_aside`, renamed to
    checkpoint-N.incomplete (kept, never deleted)."""
    for folder in checkpoints(output_dir):
        problems = checkpoint_problems(folder)
        if not problems:
            return str(folder)
        kept = _set_aside(folder) if set_aside else folder
        warnings.warn(f"resume: skipped {folder} because it is incomplete ({'; '.join(problems)}), "
                      f"probably written when the run was killed; it is kept as {kept.name}, "
                      "and the run resumes from the previous complete checkpoint", UserWarning)
    return None


def adapter_problems(folder) -> list[str]:
    """What is wrong with a LoRA adapter folder ([] = adapter_config.json parses and the weights
    file is whole). Each line names the file's path."""
    folder = Path(folder)
    problems = []
    config = folder / "adapter_config.json"
    if not config.exists():
        return [f"{config} is missing (not a LoRA adapter folder)"]
    try:
        if not isinstance(json.loads(config.read_text(encoding="utf-8")), dict):
            problems.append(f"{config} is not a JSON object")
    except (OSError, ValueError) as exc:
        problems.append(f"{config} is not valid JSON, probably cut short ({exc})")
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        if problem := _safetensors_problem(weights):
            problems.append(f"{weights}: {problem}")
    elif (folder / "adapter_model.bin").exists():
        if problem := _zip_problem(folder / "adapter_model.bin"):
            problems.append(f"{folder / 'adapter_model.bin'}: {problem}")
    else:
        problems.append(f"{folder} has no adapter_model.safetensors")
    return problems
