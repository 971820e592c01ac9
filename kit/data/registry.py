"""`dataset_info.json`, LLaMA-Factory's dataset registry: read an entry, write a new one.

An entry tells where the data is (`hf_hub_url` / `ms_hub_url` / `om_hub_url`, `script_url`,
`cloud_file_name`, `file_name`, tried in LLaMA-Factory's order), its `formatting` (alpaca, sharegpt,
openai), `ranking`, `subset`, `split`, `folder`, `num_samples`, and two maps: `columns` (canonical
name -> the file's column) and `tags` (sharegpt role / content keys and role values).

Defaults follow LLaMA-Factory's `DatasetAttr` (src/llamafactory/data/parser.py), including one
subtlety: when an entry has a `columns` (or `tags`) map, every key it leaves out becomes None, not the
default. So `{"columns": {"prompt": "text"}}` means "no response column": pre-training text.
Kit addition: `formatting: "openai"` defaults to OpenAI-style keys (messages/role/content, roles
user/assistant/system/tool).
Not here: reading the data files (kit.data.readers) or converting rows (kit.data.formats).
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, fields
from pathlib import Path

from kit.data.validate import DataError

DATA_CONFIG = "dataset_info.json"
FORMATTINGS = ("alpaca", "sharegpt", "openai")
COLUMN_KEYS = ("prompt", "query", "response", "history", "messages", "system", "tools",
               "images", "videos", "audios", "chosen", "rejected", "kto_tag")
TAG_KEYS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag",
            "system_tag")
SOURCE_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_name")
ENTRY_KEYS = SOURCE_KEYS + ("formatting", "ranking", "subset", "split", "folder", "num_samples",
                            "columns", "tags")


@dataclass
class DatasetAttr:
    """One registry entry, with LLaMA-Factory's defaults filled in."""

    name: str
    load_from: str                # "hf_hub", "ms_hub", "om_hub", "script", "cloud_file", "file"
    source: str                   # the url / script / file name the entry gives
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str | None = None      # None: the caller's split (load_dataset(split=...), default "train")
    folder: str | None = None
    num_samples: int | None = None
    # columns
    system: str | None = None
    tools: str | None = None
    images: str | None = None
    videos: str | None = None
    audios: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None
    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    messages: str | None = "conversations"
    # sharegpt tags
    role_tag: str | None = "from"
    content_tag: str | None = "value"
    user_tag: str | None = "human"
    assistant_tag: str | None = "gpt"
    observation_tag: str | None = "observation"
    function_tag: str | None = "function_call"
    system_tag: str | None = "system"
    explicit_columns: tuple = ()  # the keys the entry's "columns" map names (kit: for clearer errors)

    def column_map(self) -> dict:
        """Canonical column name -> the file's column name, for the columns this format reads."""
        keys = ("prompt", "query", "response", "history") if self.formatting == "alpaca" else ("messages",)
        keys += ("system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag")
        return {key: getattr(self, key) for key in keys if getattr(self, key)}


_OPENAI_DEFAULTS = dict(messages="messages", role_tag="role", content_tag="content", user_tag="user",
                        assistant_tag="assistant", observation_tag="tool", function_tag="function",
                        system_tag="system")


def read_dataset_info(dataset_dir: str | Path) -> dict:
    """The parsed dataset_info.json of a folder; DataError naming the file (and line) if it is unusable."""
    path = Path(dataset_dir) / DATA_CONFIG
    if not path.exists():
        raise DataError(f"there is no {DATA_CONFIG} in {dataset_dir}", file=str(path),
                        fix="pass dataset_dir= the folder that holds dataset_info.json "
                            "(kit.env.data_dir() for the demo data)")
    def no_repeats(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise DataError(f"'{key}' is defined twice in one object (JSON would keep only the last one)",
                                file=str(path), field=key, fix="rename or remove one of the two")
            seen[key] = value
        return seen

    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=no_repeats)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}", file=str(path),
                        fix="check for a missing comma or quote, or a trailing comma, near that line") from None
    if not isinstance(info, dict):
        raise DataError("the registry must be a JSON object {name: entry}", file=str(path))
    return info


def suggest(name: str, names) -> list[str]:
    """Registered names closest to a misspelt one."""
    names = list(names)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return close or [n for n in names if name.lower() in n.lower()][:3]


def parse_entry(name: str, entry: dict, *, registry_file: str = DATA_CONFIG) -> DatasetAttr:
    """Turn one dataset_info.json entry into a DatasetAttr (LLaMA-Factory's order of sources)."""
    if not isinstance(entry, dict):
        raise DataError("an entry must be a JSON object", dataset=name, file=registry_file)
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        raise DataError(f"unknown key(s) {unknown} in the entry", dataset=name, file=registry_file,
                        field=unknown[0], fix=f"allowed keys: {', '.join(ENTRY_KEYS)}")
    for key, kind in (("hf_hub_url", "hf_hub"), ("ms_hub_url", "ms_hub"), ("om_hub_url", "om_hub"),
                      ("script_url", "script"), ("cloud_file_name", "cloud_file"), ("file_name", "file")):
        if key in entry:
            load_from, source = kind, entry[key]
            break
    else:
        raise DataError("the entry names no data source", dataset=name, file=registry_file, field="file_name",
                        fix="add \"file_name\": \"my_data.json\" (a file or folder in the data dir) or a hub url")
    attr = DatasetAttr(name=name, load_from=load_from, source=source)
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        raise DataError(f"formatting {formatting!r} is not one of {FORMATTINGS}", dataset=name,
                        file=registry_file, field="formatting")
    attr.formatting = formatting
    if formatting == "openai":
        for key, value in _OPENAI_DEFAULTS.items():
            setattr(attr, key, value)
    attr.ranking = bool(entry.get("ranking", False))
    attr.subset, attr.folder = entry.get("subset"), entry.get("folder")
    attr.split = entry.get("split")
    attr.num_samples = entry.get("num_samples")
    if attr.num_samples is not None and (isinstance(attr.num_samples, bool) or not isinstance(attr.num_samples, int)
                                         or attr.num_samples < 1):
        raise DataError(f"num_samples = {attr.num_samples!r} is not allowed: expected a whole number >= 1",
                        dataset=name, file=registry_file, field="num_samples",
                        fix="remove num_samples to use every row, or give how many rows to sample")
    attr.explicit_columns = tuple(entry.get("columns", {}) or ())
    for group, keys in (("columns", COLUMN_KEYS), ("tags", TAG_KEYS)):
        if group in entry:
            mapping = entry[group]
            if not isinstance(mapping, dict):
                raise DataError(f"'{group}' must be an object", dataset=name, file=registry_file, field=group)
            bad = [key for key in mapping if key not in keys]
            if bad:
                raise DataError(f"unknown {group} key {bad[0]!r}", dataset=name, file=registry_file,
                                field=f"{group}.{bad[0]}", fix=f"allowed {group} keys: {', '.join(keys)}")
            for key in keys:  # LLaMA-Factory: keys left out of the map become None
                if formatting == "openai" and key in _OPENAI_DEFAULTS and key not in mapping:
                    continue  # kit: openai keeps its own defaults
                setattr(attr, key, mapping.get(key))
    return attr


def get_dataset_attr(name: str, dataset_dir: str | Path) -> DatasetAttr:
    """The entry called `name`; an unknown name raises DataError suggesting the closest names."""
    info = read_dataset_info(dataset_dir)
    registry_file = str(Path(dataset_dir) / DATA_CONFIG)
    if name not in info:
        close = suggest(name, info)
        hint = f"did you mean {', '.join(close)}?" if close else "register it first (kit.data.register_dataset)"
        raise DataError(f"Undefined dataset '{name}' in {DATA_CONFIG} (it has {len(info)} entries)",
                        file=registry_file, field=name, fix=hint)
    return parse_entry(name, info[name], registry_file=registry_file)


def register_dataset(name: str, file_name: str, *, dataset_dir: str | Path | None = None,
                     formatting: str = "alpaca", columns: dict | None = None, tags: dict | None = None,
                     ranking: bool = False, overwrite: bool = False, **extra) -> dict:
    """Add (or with overwrite=True replace) the entry `name` in `<dataset_dir>/dataset_info.json`.

    `file_name` is relative to dataset_dir (as in LLaMA-Factory) or absolute; it must exist. `extra`
    takes other entry keys (subset, split, folder, num_samples). Returns the entry written. An existing
    entry is never replaced without overwrite=True; the rest of the registry is kept as it was.
    """
    from kit import env

    dataset_dir = Path(dataset_dir) if dataset_dir is not None else env.data_dir()
    path = dataset_dir / DATA_CONFIG
    info = read_dataset_info(dataset_dir) if path.exists() else {}
    if name in info and not overwrite:
        if info[name] == _entry(file_name, formatting, columns, tags, ranking, extra):
            return info[name]
        raise DataError(f"'{name}' is already registered as {json.dumps(info[name])}", file=str(path),
                        field=name, fix="pick another name, or pass overwrite=True to replace that entry")
    if not (dataset_dir / file_name).exists():
        raise DataError(f"file_name {file_name!r} does not exist in {dataset_dir}", dataset=name,
                        field="file_name", fix="write the file first, or give a path relative to dataset_dir")
    entry = _entry(file_name, formatting, columns, tags, ranking, extra)
    parse_entry(name, entry, registry_file=str(path))  # validate keys before writing
    info[name] = entry
    dataset_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return entry


def _entry(file_name, formatting, columns, tags, ranking, extra) -> dict:
    entry = {"file_name": str(file_name)}
    if formatting != "alpaca":
        entry["formatting"] = formatting
    if ranking:
        entry["ranking"] = True
    entry.update(extra)
    if columns:
        entry["columns"] = dict(columns)
    if tags:
        entry["tags"] = dict(tags)
    return entry


def attr_fields() -> list[str]:
    return [f.name for f in fields(DatasetAttr)]
