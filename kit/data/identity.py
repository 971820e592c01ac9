"""The identity dataset: questions about who the assistant is, with {{name}} / {{author}} to fill in.

LLaMA-Factory ships data/identity.json with these placeholders and asks users to search-and-replace
them by hand. `make_identity_dataset("Aurora", "Lab 7")` writes a filled copy, plus a
dataset_info.json (the source registry, with the other entries' relative paths made absolute so
they still resolve), into a folder under kit.env.work_dir(); training then uses
`dataset_dir=<that folder>, dataset="identity,alpaca_en_demo"` unchanged.
Not here: training on it (kit.train).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from kit.data.registry import DATA_CONFIG, read_dataset_info
from kit.data.validate import DataError

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def fill_placeholders(value, name: str, author: str, **more):
    """Replace {{name}}, {{author}} (and any {{key}} given in `more`) in every string of `value`.

    Works on strings, lists and dicts (recursively) and returns a new object. An unknown placeholder
    raises DataError rather than reaching the training data unfilled.
    """
    values = {"name": name, "author": author, **more}
    for key, text in values.items():
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{{{{{key}}}}} needs a non-empty string, got {text!r}", field=key)

    def fill(item):
        if isinstance(item, str):
            def swap(match):
                if match.group(1) not in values:
                    raise DataError(f"unknown placeholder {match.group(0)} in {item[:60]!r}", field=match.group(1),
                                    fix=f"pass {match.group(1)}=... or remove it")
                return values[match.group(1)]
            return PLACEHOLDER.sub(swap, item)
        if isinstance(item, list):
            return [fill(x) for x in item]
        if isinstance(item, dict):
            return {k: fill(v) for k, v in item.items()}
        return item

    return fill(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _write(path: Path, text: str, overwrite: bool) -> None:
    if path.exists() and path.read_text(encoding="utf-8") != text and not overwrite:
        raise DataError(f"{path} already exists with different content", file=str(path),
                        fix="choose another out_dir, or pass overwrite=True to replace it")
    path.write_text(text, encoding="utf-8")


def make_identity_dataset(name: str, author: str, dataset_dir=None, out_dir=None, *,
                          dataset_name: str = "identity", overwrite: bool = False) -> tuple[Path, str]:
    """Write a filled identity dataset and its registry; return (dataset_dir, dataset_name) for training.

    dataset_dir  the source data folder (default kit.env.data_dir()); its registry entry `dataset_name`
                 says which file holds the placeholders
    out_dir      where to write (default <work_dir>/data/identity-<name>-<author>)
    Never replaces a different existing file unless overwrite=True; rewriting the same content is fine.
    """
    from kit import env

    source_dir = Path(dataset_dir) if dataset_dir is not None else env.data_dir()
    info = read_dataset_info(source_dir)
    if dataset_name not in info or "file_name" not in info[dataset_name]:
        raise DataError(f"no local '{dataset_name}' entry in {source_dir / DATA_CONFIG}", field=dataset_name)
    source_file = source_dir / info[dataset_name]["file_name"]
    rows = json.loads(source_file.read_text(encoding="utf-8"))
    filled = fill_placeholders(rows, name, author)
    out = Path(out_dir) if out_dir is not None else env.work_dir() / "data" / f"identity-{_slug(name)}-{_slug(author)}"
    out.mkdir(parents=True, exist_ok=True)
    registry = {}
    for key, entry in info.items():  # keep every other dataset usable from the new folder
        entry = dict(entry)
        for field in ("file_name", "script_url"):
            if field in entry and not Path(entry[field]).is_absolute():
                entry[field] = str((source_dir / entry[field]).resolve())
        registry[key] = entry
    file_name = Path(info[dataset_name]["file_name"]).name
    registry[dataset_name] = {**info[dataset_name], "file_name": file_name}
    _write(out / file_name, json.dumps(filled, indent=2, ensure_ascii=False) + "\n", overwrite)
    _write(out / DATA_CONFIG, json.dumps(registry, indent=2, ensure_ascii=False) + "\n", overwrite)
    return out, dataset_name
