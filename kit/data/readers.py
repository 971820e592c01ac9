"""Read the raw rows a registry entry points at: local files and folders, hubs, scripts.

Local files are read here rather than through `datasets.load_dataset("json", ...)` so that every
problem can name its file and line: bad JSON gives the line and column, a bad JSON-lines record
becomes a reported row instead of a crash. Extensions as in LLaMA-Factory: json, jsonl, csv, parquet,
arrow, txt (one row {"text": line} per non-blank line). A folder is read file by file (sorted).
Hubs (`hf_hub_url`, `ms_hub_url`, `om_hub_url`) need the network; offline they raise a DataError
that says how to use a local file instead. `script_url` runs Python, so it needs allow_script=True.
Not here: column mapping and checks (kit.data.formats).
"""
from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kit.data.registry import DatasetAttr
from kit.data.validate import DataError, RowIssue

EXTENSIONS = ("json", "jsonl", "csv", "parquet", "arrow", "txt")


@dataclass
class RawFile:
    """Rows of one source file: `rows[i]` is row i (a dict), `issues` the rows that could not be read."""

    path: str
    rows: list = field(default_factory=list)       # list of (row_index, dict)
    issues: list = field(default_factory=list)     # list of RowIssue


def read_source(attr: DatasetAttr, dataset_dir: Path, *, allow_script: bool = False,
                split: str = "train") -> list[RawFile]:
    """All raw rows of one registry entry, file by file."""
    if attr.load_from == "file":
        return read_path(attr.name, Path(dataset_dir) / attr.source)
    if attr.load_from in ("hf_hub", "ms_hub", "om_hub"):
        return [_read_hub(attr, attr.split or split)]
    if attr.load_from == "script":
        return [_read_script(attr, Path(dataset_dir), allow_script)]
    raise DataError("cloud_file_name (S3 / GCS files) is not supported by the kit", dataset=attr.name,
                    field="cloud_file_name", fix="download the file into the data dir and use \"file_name\"")


def read_path(name: str, path: Path) -> list[RawFile]:
    """One file, or every file of a folder (all of one type, as LLaMA-Factory requires)."""
    if not path.exists():
        raise DataError(f"file_name points to {path}, which does not exist", dataset=name, file=str(path),
                        field="file_name", fix="check the spelling; file_name is relative to dataset_dir")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError("the folder has no data files", dataset=name, file=str(path), field="file_name")
        kinds = {_kind(name, p) for p in files}
        if len(kinds) > 1:
            raise DataError(f"the folder mixes file types {sorted(kinds)}", dataset=name, file=str(path),
                            field="file_name", fix="keep one file type per dataset folder")
        return [read_file(name, p) for p in files]
    return [read_file(name, path)]


def _kind(name: str, path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise DataError(f"unsupported file type '.{ext}'", dataset=name, file=str(path), field="file_name",
                        fix=f"use one of: {', '.join('.' + e for e in EXTENSIONS)}")
    return ext


def read_text(name: str, path: Path) -> str:
    """A text file's content: UTF-8 (a leading byte-order mark is dropped, UTF-16 with a BOM is
    decoded); any other encoding is a DataError naming the file, line and column of the first byte
    that is not UTF-8, with the encoding it most likely is (charset-normalizer's guess)."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        guess = _guess_encoding(data)
        raise DataError(f"the file is not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column {column} "
                        f"cannot be decoded" + (f" (it looks like {guess})" if guess else ""), dataset=name,
                        file=str(path), fix="re-save the file as UTF-8, e.g. iconv -f "
                        f"{guess or 'latin1'} -t utf-8 IN > OUT; the kit does not guess encodings") from None


def _guess_encoding(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    best = from_bytes(data[:200_000]).best()
    return best.encoding if best is not None else None


MAX_DEPTH = 64  # deepest nesting of lists/objects accepted inside a row


class _Duplicates(dict):
    """A JSON object that had a repeated key (json keeps the last value; we report it instead)."""

    repeated: list


def _pairs(pairs):
    seen, repeated = {}, []
    for key, value in pairs:
        if key in seen:
            repeated.append(key)
        seen[key] = value
    if repeated:
        out = _Duplicates(seen)
        out.repeated = repeated
        return out
    return seen


def _loads(text: str):
    return json.loads(text, object_pairs_hook=_pairs)


def _row_problem(value, where: str = "", depth: int = 0) -> tuple[str, str, str] | None:
    """(field, reason, fix) for what a parsed row must not hold: a repeated key (the file is
    ambiguous), a lone surrogate (not encodable text), nesting deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return (where or "row", f"nested deeper than {MAX_DEPTH} levels", "flatten the row")
    if isinstance(value, _Duplicates):
        key = value.repeated[0]
        return (f"{where}.{key}" if where else key, f"the key '{key}' appears more than once in one object "
                "(JSON keeps only the last value)", "keep one value for the key")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            return (where or "row", f"the text holds an invalid character (a lone surrogate "
                    f"{value[err.start]!r} at position {err.start})", "fix the \\ud8xx escape in the file")
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _row_problem(item, f"{where}.{key}" if where else str(key), depth + 1)
        if found:
            return found
    return None


def _records_of_object(name: str, path: Path, text: str):
    """A .json file holding one JSON object: a DataError naming what it is (never a per-line storm)."""
    try:
        data = _loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    if lists:
        raise DataError(f"the file is one JSON object whose key '{lists[0]}' holds {len(data[lists[0]])} rows; "
                        "a dataset file must be a JSON list of rows (or JSON lines)", dataset=name,
                        file=str(path), field=lists[0], fix=f"make the list under '{lists[0]}' the whole file")
    raise DataError("the file is one JSON object, not a list of rows", dataset=name, file=str(path),
                    fix="write the rows as a JSON list [{...}, {...}] or one JSON object per line")


def read_file(name: str, path: Path) -> RawFile:
    kind = _kind(name, path)
    raw = RawFile(str(path))
    if kind in ("json", "jsonl"):
        text = read_text(name, path)
        if kind == "json" and text.lstrip().startswith("["):
            try:
                data = _loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"bad JSON at line {err.lineno}, column {err.colno}: {err.msg}", dataset=name,
                                file=str(path), fix="look for a missing comma, quote or bracket, or a "
                                "trailing comma, at or just before that line") from None
            except RecursionError:
                raise DataError("the JSON is nested too deeply to read", dataset=name, file=str(path),
                                fix=f"rows may nest at most {MAX_DEPTH} levels") from None
            records = list(enumerate(data))
        else:  # JSON lines (datasets' json reader also accepts these in a .json file)
            if kind == "json" and text.lstrip().startswith("{") and len(text.strip().splitlines()) > 1:
                _records_of_object(name, path, text)  # raises when the file is one (pretty-printed) object
            records = []
            for line_no, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                index = len(records)
                try:
                    records.append((index, _loads(line)))
                except json.JSONDecodeError as err:
                    records.append((index, None))
                    raw.issues.append(RowIssue(name, str(path), index, "json",
                                               f"bad JSON at line {line_no}, column {err.colno}: {err.msg}",
                                               "each line must be one complete JSON object"))
                except RecursionError:
                    records.append((index, None))
                    raw.issues.append(RowIssue(name, str(path), index, "json", f"line {line_no} is nested "
                                               "too deeply to read", f"rows may nest at most {MAX_DEPTH} levels"))
        for index, record in records:
            if record is None:
                continue
            if not isinstance(record, dict):
                raw.issues.append(RowIssue(name, str(path), index, "row",
                                           f"a row must be a JSON object, got {type(record).__name__}",
                                           'write each row as {"column": value, ...}'))
                continue
            problem = _row_problem(record)
            if problem:
                raw.issues.append(RowIssue(name, str(path), index, *problem))
                continue
            raw.rows.append((index, record))
        return raw
    if kind == "txt":
        lines = [line for line in read_text(name, path).splitlines() if line.strip()]
        raw.rows = [(i, {"text": line}) for i, line in enumerate(lines)]
        return raw
    if kind == "csv":
        import pandas as pd

        import io

        frame = pd.read_csv(io.StringIO(read_text(name, path)), keep_default_na=False)
        records = frame.to_dict(orient="records")
    elif kind == "parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    else:  # arrow (as written by datasets' save_to_disk)
        import datasets

        records = datasets.Dataset.from_file(str(path)).to_list()
    raw.rows = [(i, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
                for i, r in enumerate(records)]
    return raw


def _read_hub(attr: DatasetAttr, split: str) -> RawFile:
    from kit import env

    key = {"hf_hub": "hf_hub_url", "ms_hub": "ms_hub_url", "om_hub": "om_hub_url"}[attr.load_from]
    offline_fix = ("download the data on a machine with internet access, save it as a .json/.jsonl file in "
                   "the data dir and register it with \"file_name\" (kit.data.register_dataset)")
    if attr.load_from != "hf_hub":
        raise DataError(f"{key} needs the {'modelscope' if attr.load_from == 'ms_hub' else 'openmind'} "
                        "client, which the kit does not install", dataset=attr.name, field=key, fix=offline_fix)
    if not env.hub_reachable():
        raise DataError(f"the Hugging Face hub is not reachable, so '{attr.source}' cannot be downloaded "
                        "(this machine is offline)", dataset=attr.name, field=key, fix=offline_fix)
    import datasets

    try:
        data = datasets.load_dataset(attr.source, name=attr.subset, data_dir=attr.folder, split=split)
    except Exception as err:  # noqa: BLE001 - re-raised with the dataset's name
        raise DataError(f"could not load '{attr.source}' from the hub: {err}", dataset=attr.name,
                        field=key, fix=offline_fix) from err
    return RawFile(f"{key}:{attr.source}", rows=list(enumerate(data.to_list())))


def _read_script(attr: DatasetAttr, dataset_dir: Path, allow_script: bool) -> RawFile:
    if not allow_script:
        raise DataError("script_url runs Python code from the data folder; refusing without permission",
                        dataset=attr.name, field="script_url",
                        fix="read the script first, then pass allow_script=True to load_dataset")
    target = dataset_dir / attr.source
    script = target / f"{target.name}.py" if target.is_dir() else target
    if not script.exists():
        raise DataError(f"no script at {script}", dataset=attr.name, file=str(script), field="script_url")
    spec = importlib.util.spec_from_file_location(f"kit_data_script_{target.name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # datasets >= 4 no longer runs loading scripts; the kit asks the script for a plain function.
    if not hasattr(module, "generate_examples"):
        raise DataError("the script must define generate_examples() yielding one dict per row",
                        dataset=attr.name, file=str(script), field="script_url",
                        fix="datasets >= 4 dropped builder scripts; expose a generate_examples() function")
    return RawFile(str(script), rows=list(enumerate(module.generate_examples())))
