"""Dataset tools: paged preview, token-length statistics, format conversion, train / validation split.

All pure functions over canonical rows (a `datasets.Dataset` or a list of dicts from load_dataset);
the widgets in kit.ui.data only render what these return.
    preview(ds, page=0, page_size=5)          -> PreviewPage (rows as text)
    token_stats(ds, tokenizer, cutoff_len)    -> TokenStats (lengths, percentiles, share over cutoff)
    to_format(rows, "sharegpt") / convert_dataset(name, out_file, to="openai")  (+ the registry entry)
    split_dataset(ds, val_size=0.1)           -> DatasetDict(train=..., validation=...)
Token counts render each row with the tokenizer's own chat template (apply_chat_template), which is
how the built-in model sees it; tools go into the system text. Not here: template-specific masking
(kit.templates.encode).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kit.data.validate import DataError

ROLE_LABELS = {"system": "SYSTEM", "user": "USER", "assistant": "ASSISTANT", "function": "TOOL CALL",
               "observation": "TOOL RESULT"}


# --------------------------------------------------------------------------------------- preview

def render_row(row: dict, width: int | None = None) -> str:
    """A canonical row as readable text: one `ROLE: content` block per message, then answers, media, label."""
    def cut(text):
        return text if width is None or len(text) <= width else text[: width - 1] + "…"
    lines = []
    if row.get("system"):
        lines.append(f"SYSTEM: {cut(row['system'])}")
    if row.get("tools"):
        names = [t.get("name", "?") for t in _tool_list(row["tools"])]
        lines.append(f"TOOLS: {', '.join(names)}")
    for message in row["messages"]:
        lines.append(f"{ROLE_LABELS.get(message['role'], message['role'].upper())}: {cut(message['content'])}")
    if row.get("chosen"):
        lines.append(f"CHOSEN: {cut(row['chosen']['content'])}")
        lines.append(f"REJECTED: {cut(row['rejected']['content'])}")
    if row.get("kto_label") is not None:
        lines.append(f"KTO LABEL: {'desirable (true)' if row['kto_label'] else 'undesirable (false)'}")
    for kind in ("images", "videos", "audios"):
        if row.get(kind):
            lines.append(f"{kind.upper()}: {', '.join(Path(p).name for p in row[kind])}")
    return "\n".join(lines)


def _tool_list(tools: str) -> list:
    try:
        value = json.loads(tools)
    except json.JSONDecodeError:
        return []
    value = value if isinstance(value, list) else [value]
    return [t.get("function", t) if isinstance(t, dict) else {} for t in value]


@dataclass
class PreviewPage:
    page: int          # 0-based page number
    num_pages: int
    total: int         # rows in the dataset
    start: int         # index of the first row shown
    rows: list         # the canonical rows of this page
    texts: list        # render_row(...) of each

    def __str__(self) -> str:
        blocks = [f"rows {self.start}-{self.start + len(self.rows) - 1} of {self.total} "
                  f"(page {self.page + 1}/{self.num_pages})"]
        blocks += [f"--- row {self.start + i} ---\n{text}" for i, text in enumerate(self.texts)]
        return "\n".join(blocks)


def preview(dataset, page: int = 0, page_size: int = 5, width: int | None = 300) -> PreviewPage:
    """One page of rows; `page` is clamped into range so a widget can never ask for a missing page."""
    total = len(dataset)
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    num_pages = max(1, math.ceil(total / page_size))
    page = min(max(0, int(page)), num_pages - 1)
    start = page * page_size
    rows = [dataset[i] for i in range(start, min(total, start + page_size))]
    return PreviewPage(page, num_pages, total, start, rows, [render_row(r, width) for r in rows])


# ------------------------------------------------------------------------------------ statistics

def chat_messages(row: dict, answer: str = "chosen") -> list[dict]:
    """A canonical row as messages the tokenizer's chat template accepts (system first; tool roles mapped)."""
    system = row.get("system") or ""
    if row.get("tools"):
        system = (system + "\n\n" if system else "") + "Tools:\n" + row["tools"]
    messages = [{"role": "system", "content": system}] if system else []
    role = {"function": "assistant", "observation": "user"}
    messages += [{"role": role.get(m["role"], m["role"]), "content": m["content"]} for m in row["messages"]]
    if row.get(answer):
        messages.append({"role": "assistant", "content": row[answer]["content"]})
    return messages


def count_tokens(row: dict, tokenizer) -> int:
    """Tokens of one row as the model would read it (prompt + answer; ranking rows with the chosen answer)."""
    messages = chat_messages(row)
    if len(messages) == 1 and messages[0]["role"] == "assistant" and not row.get("chosen"):  # pre-training text
        return len(tokenizer(messages[0]["content"])["input_ids"]) + 1  # + eos
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    return len(ids)


@dataclass
class TokenStats:
    lengths: list = field(repr=False)   # tokens per row
    cutoff_len: int | None = None

    @property
    def num_rows(self) -> int:
        return len(self.lengths)

    def percentile(self, q: float) -> int:
        """Nearest-rank percentile (q in 0..100) of the token lengths."""
        ordered = sorted(self.lengths)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    @property
    def over_cutoff(self) -> float:
        """Share of rows longer than cutoff_len (they would be truncated in training)."""
        if not self.cutoff_len or not self.lengths:
            return 0.0
        return sum(n > self.cutoff_len for n in self.lengths) / len(self.lengths)

    def summary(self) -> dict:
        data = {"rows": self.num_rows, "min": min(self.lengths), "mean": round(sum(self.lengths) / self.num_rows, 1),
                "p50": self.percentile(50), "p95": self.percentile(95), "max": max(self.lengths),
                "total_tokens": sum(self.lengths)}
        if self.cutoff_len:
            data[f"over_{self.cutoff_len}"] = round(self.over_cutoff, 3)
        return data

    def histogram(self, bins: int = 20) -> tuple[list[int], list[float]]:
        """(counts, edges) of the token lengths, like numpy.histogram."""
        import numpy as np

        counts, edges = np.histogram(self.lengths, bins=bins)
        return counts.tolist(), edges.tolist()

    def plot(self, bins: int = 20, ax=None, title: str = "Token lengths"):
        """A matplotlib histogram with the cutoff_len marked; returns the Axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3))
        ax.hist(self.lengths, bins=bins, color="#4C72B0")
        if self.cutoff_len:
            ax.axvline(self.cutoff_len, color="#C44E52", linestyle="--", label=f"cutoff_len={self.cutoff_len}")
            ax.legend()
        ax.set_xlabel("tokens per row")
        ax.set_ylabel("rows")
        ax.set_title(title)
        return ax


def token_stats(dataset, tokenizer=None, cutoff_len: int | None = None) -> TokenStats:
    """Token length of every row (default tokenizer: the built-in model's)."""
    if tokenizer is None:
        from kit import models

        tokenizer = models.load_tokenizer()
    return TokenStats([count_tokens(row, tokenizer) for row in dataset], cutoff_len)


# ------------------------------------------------------------------------------------ conversion

SHAREGPT_TAGS = {"function": "function_call", "observation": "observation", "user": "human", "assistant": "gpt"}
OPENAI_TAGS = {"function": "function", "observation": "tool", "user": "user", "assistant": "assistant"}


def to_format(rows, to: str) -> list[dict]:
    """Canonical rows -> rows of an alpaca / sharegpt / openai file (plain dicts, ready for json.dump)."""
    out = []
    for index, row in enumerate(rows):
        if to == "alpaca":
            out.append(_to_alpaca(index, row))
        elif to in ("sharegpt", "openai"):
            out.append(_to_chat(row, to, index))
        else:
            raise DataError(f"unknown format {to!r}", field="to", fix="use alpaca, sharegpt or openai")
    return out


def _media_extra(row: dict, item: dict) -> dict:
    for kind in ("images", "videos", "audios"):
        if row.get(kind):
            item[kind] = list(row[kind])
    return item


def _to_alpaca(index: int, row: dict) -> dict:
    messages = row["messages"]
    if any(m["role"] in ("function", "observation") for m in messages):
        raise DataError("tool-calling turns (function / observation) cannot be written in alpaca format",
                        row=index, field="messages", fix="convert to sharegpt or openai instead")
    is_pt = len(messages) == 1 and messages[0]["role"] == "assistant"
    if is_pt:
        return {"text": messages[0]["content"]}
    answered = row.get("chosen") is None and messages[-1]["role"] == "assistant"
    prompt_part = messages[:-1] if answered else messages
    pairs = [[prompt_part[i]["content"], prompt_part[i + 1]["content"]] for i in range(0, len(prompt_part) - 1, 2)]
    item = {"instruction": prompt_part[-1]["content"], "input": ""}
    if answered:
        item["output"] = messages[-1]["content"]
    if row.get("chosen"):
        item["chosen"], item["rejected"] = row["chosen"]["content"], row["rejected"]["content"]
    if row.get("system"):
        item["system"] = row["system"]
    if row.get("tools"):
        item["tools"] = row["tools"]
    if pairs:
        item["history"] = pairs
    if row.get("kto_label") is not None:
        item["kto_tag"] = row["kto_label"]
    return _media_extra(row, item)


def _to_chat(row: dict, to: str, index: int = 0) -> dict:
    messages = row["messages"]
    if len(messages) == 1 and messages[0]["role"] == "assistant" and row.get("chosen") is None:
        raise DataError(f"pre-training text cannot be written in {to} format (LLaMA-Factory reads plain "
                        "text only through alpaca columns)", row=index, field="messages",
                        fix="convert it to alpaca: rows {\"text\": ...} with columns {\"prompt\": \"text\"}")
    tags = SHAREGPT_TAGS if to == "sharegpt" else OPENAI_TAGS
    role_key, content_key = ("from", "value") if to == "sharegpt" else ("role", "content")
    messages = [{role_key: tags[m["role"]], content_key: m["content"]} for m in row["messages"]]
    if to == "openai" and row.get("system"):
        messages.insert(0, {role_key: "system", content_key: row["system"]})
    item = {"conversations" if to == "sharegpt" else "messages": messages}
    if to == "sharegpt" and row.get("system"):
        item["system"] = row["system"]
    if row.get("tools"):
        item["tools"] = row["tools"]
    if row.get("chosen"):
        for key in ("chosen", "rejected"):
            item[key] = {role_key: tags[row[key]["role"]], content_key: row[key]["content"]}
    if row.get("kto_label") is not None:
        item["kto_tag"] = row["kto_label"]
    return _media_extra(row, item)


def registry_entry(rows, to: str, file_name: str) -> dict:
    """The dataset_info.json entry that reads a file written by to_format(rows, to) back in."""
    rows = list(rows)
    first = rows[0] if rows else {}
    ranking = bool(first.get("chosen"))
    has = {key: any(r.get(key) for r in rows) for key in ("system", "tools", "images", "videos", "audios")}
    kto = any(r.get("kto_label") is not None for r in rows)
    entry = {"file_name": file_name}
    if to == "alpaca":
        if rows and len(first["messages"]) == 1 and first["messages"][0]["role"] == "assistant":
            return {**entry, "columns": {"prompt": "text"}}
        columns = {"prompt": "instruction", "query": "input"}
        columns.update({"chosen": "chosen", "rejected": "rejected"} if ranking else {"response": "output"})
        if any(len(r["messages"]) > 2 for r in rows):
            columns["history"] = "history"
    else:
        entry["formatting"] = "sharegpt"
        columns = {"messages": "conversations" if to == "sharegpt" else "messages"}
        if ranking:
            columns.update(chosen="chosen", rejected="rejected")
    if ranking:
        entry["ranking"] = True
    for key, present in has.items():
        if present and not (to == "openai" and key == "system"):
            columns[key] = key
    if kto:
        columns["kto_tag"] = "kto_tag"
    entry["columns"] = columns
    if to == "openai":
        entry["tags"] = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "observation_tag": "tool", "function_tag": "function",
                         "system_tag": "system"}
    return entry


def write_rows(rows: list[dict], path: str | Path, overwrite: bool = False) -> Path:
    """Write rows as .json (a list) or .jsonl (one object a line); never replaces a file without overwrite."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists", file=str(path), fix="pick another name or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif path.suffix == ".json":
        text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    else:
        raise DataError(f"write .json or .jsonl, not {path.suffix!r}", file=str(path))
    path.write_text(text, encoding="utf-8")
    return path


def convert_dataset(name: str, out_file: str | Path, to: str, *, dataset_dir=None, stage: str = "sft",
                    register_as: str | None = None, overwrite: bool = False) -> dict:
    """Load a registered dataset, write it in format `to` and return (and optionally register) its entry.

    With register_as="new_name" the entry is added to the registry of the folder out_file is in.
    """
    from kit.data.loader import load_dataset
    from kit.data.registry import register_dataset

    rows = load_dataset(name, dataset_dir=dataset_dir, stage=stage, verbose=False).to_list()
    rows_out = to_format(rows, to)
    path = write_rows(rows_out, out_file, overwrite=overwrite)
    entry = registry_entry(rows, to, path.name)
    if register_as:
        extra = {k: v for k, v in entry.items() if k not in ("file_name", "formatting", "columns", "tags", "ranking")}
        register_dataset(register_as, path.name, dataset_dir=path.parent, formatting=entry.get("formatting", "alpaca"),
                         columns=entry.get("columns"), tags=entry.get("tags"), ranking=entry.get("ranking", False),
                         overwrite=overwrite, **extra)
    return entry


# --------------------------------------------------------------------------------------- split

def split_dataset(dataset, val_size: float | int = 0.1, seed: int = 42):
    """A DatasetDict with `train` and `validation` (LLaMA-Factory's val_size: a fraction or a row count)."""
    import datasets

    if isinstance(val_size, float) and not 0.0 < val_size < 1.0:
        raise ValueError(f"val_size as a fraction must be between 0 and 1, got {val_size}")
    if isinstance(val_size, int) and not 0 < val_size < len(dataset):
        raise ValueError(f"val_size as a row count must be between 1 and {len(dataset) - 1}, got {val_size}")
    parts = dataset.train_test_split(test_size=val_size, seed=seed)
    return datasets.DatasetDict(train=parts["train"], validation=parts["test"])
