"""The kit's ownership marker: a small file the kit writes into every folder it creates for a
training run or an export, so that `overwrite` replaces only folders the kit made.

    write_marker(folder, "run")           # kit.train.run and kit.export.merge_and_save do this
    check_replaceable(folder, "output_dir")  # raises unless folder is empty, missing or marked

A folder without the marker (your dataset, notes, another tool's output) is never deleted or
replaced, whatever `overwrite_output_dir` / `--overwrite` / `merge_and_save(overwrite=True)` say.
Left out: locking against two kit processes replacing the same folder at once.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

MARKER = ".kit-folder.json"  # file name, in the folder itself


class NotKitFolderError(FileExistsError):
    """A folder the kit was asked to replace holds no kit marker: it is left untouched."""


def write_marker(folder, kind: str) -> Path:
    """Mark `folder` (created if needed) as made by the kit for `kind` ("run" or "export")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MARKER
    path.write_text(json.dumps({"made_by": "llm-course-kit", "kind": kind,
                                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    return path


def read_marker(folder) -> dict | None:
    """The marker's content, or None when `folder` has no (readable) marker."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("made_by") == "llm-course-kit" else None


def is_kit_folder(folder) -> bool:
    return read_marker(folder) is not None


def check_replaceable(folder, what: str = "folder") -> None:
    """Raise NotKitFolderError when `folder` exists, is not empty and has no kit marker
    (or is a file). `what` names the setting in the message (e.g. "output_dir")."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise NotKitFolderError(f"{what} {folder} is a file, not a folder the kit made; it was left untouched. "
                                f"Choose another {what}.")
    if not any(folder.iterdir()) or is_kit_folder(folder):
        return
    found = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(found[:6]) + (f", ... ({len(found)} entries)" if len(found) > 6 else "")
    raise NotKitFolderError(
        f"{what} {folder} was not made by the kit (it has no {MARKER} marker file) and holds: {shown}. "
        f"Overwrite replaces only folders the kit made, so it was left untouched. Choose another {what}, "
        "or move its contents away yourself.")
