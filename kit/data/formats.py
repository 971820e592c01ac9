"""Alpaca / ShareGPT / OpenAI rows -> canonical rows for one training stage, with a reason for every reject.

The canonical row (docs/architecture.md) is the same whatever the source format:
    messages  [{"role", "content"}], no system message; roles user / assistant / function / observation
    system, tools (JSON text), images / videos / audios (absolute paths), chosen / rejected, kto_label
Conversion follows LLaMA-Factory's converters (src/llamafactory/data/converter.py): alpaca joins
`instruction` and `input` with a newline and turns `history` pairs into earlier turns; sharegpt turns
must alternate (user or observation) / (assistant or function); ranking rows keep only the prompt and
move the two answers to `chosen` / `rejected`. Where LLaMA-Factory logs a warning and skips a row,
we return a `RowIssue` saying which row, which field, what is wrong and how to fix it.
Stage shapes: sft ends with the answer; rm / dpo hold the prompt only; kto holds prompt + judged
answer + kto_label; ppo holds the prompt only; pt is [{"role": "assistant", "content": text}] where
text is the first prompt message (LLaMA-Factory's pre-training processor reads only that).
Not here: reading files (kit.data.readers), mixing and sampling (kit.data.loader).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from kit.data.registry import DatasetAttr
from kit.data.validate import DataError, RowIssue

STAGES = ("pt", "sft", "rm", "dpo", "kto", "ppo", "grpo")  # grpo: the ppo row shape (prompt only)
TRAIN_STAGES = ("sft", "pt", "rm", "dpo", "kto", "grpo")  # the training stages (LLaMA-Factory names): the one definition
RANKING_STAGES = ("rm", "dpo")
MEDIA = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
USER_SIDE, ASSISTANT_SIDE = ("user", "observation"), ("assistant", "function")


class _RowError(Exception):
    def __init__(self, field: str, reason: str, fix: str = ""):
        super().__init__(reason)
        self.field, self.reason, self.fix = field, reason, fix


def features():
    """The datasets.Features of a canonical dataset (same for every format and stage)."""
    import datasets

    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    return datasets.Features({
        "messages": datasets.List(message),
        "system": datasets.Value("string"),
        "tools": datasets.Value("string"),
        "images": datasets.List(datasets.Value("string")),
        "videos": datasets.List(datasets.Value("string")),
        "audios": datasets.List(datasets.Value("string")),
        "chosen": message,
        "rejected": message,
        "kto_label": datasets.Value("bool"),
    })


# ------------------------------------------------------------------------------- dataset-level checks

def check_stage(attr: DatasetAttr, stage: str) -> None:
    """Raise DataError when a whole dataset cannot serve `stage` (ranking data for SFT, and so on)."""
    if stage not in STAGES:
        raise DataError(f"unknown stage {stage!r}", field="stage", fix=f"use one of {', '.join(STAGES)}")
    if stage in RANKING_STAGES and not attr.ranking:
        raise DataError(f"stage '{stage}' needs preference pairs, but this dataset is not a ranking dataset "
                        "(its entry has no \"ranking\": true)", dataset=attr.name, field="ranking",
                        fix="use a ranking dataset such as dpo_en_demo, or add \"ranking\": true and "
                            "\"chosen\" / \"rejected\" columns to the entry")
    if stage not in RANKING_STAGES and attr.ranking:
        raise DataError(f"this is a ranking dataset (\"ranking\": true, chosen/rejected pairs); stage "
                        f"'{stage}' cannot use it", dataset=attr.name, field="ranking",
                        fix="use stage='rm' or stage='dpo' for it, or pick a non-ranking dataset for "
                            f"stage '{stage}'")
    if stage == "kto" and not attr.kto_tag:
        raise DataError("stage 'kto' needs a kto_tag column (true = good answer, false = bad answer)",
                        dataset=attr.name, field="columns.kto_tag",
                        fix="add \"kto_tag\": \"<your label column>\" to the entry's columns (see kto_en_demo)")
    if stage != "kto" and attr.kto_tag:
        raise DataError(f"this is a KTO dataset (it maps kto_tag); stage '{stage}' cannot use it",
                        dataset=attr.name, field="columns.kto_tag",
                        fix="use stage='kto', or remove kto_tag from the entry's columns to use every answer")
    if stage in RANKING_STAGES and not (attr.chosen and attr.rejected):
        raise DataError("a ranking dataset must map both \"chosen\" and \"rejected\" columns",
                        dataset=attr.name, field="columns.chosen",
                        fix="add \"chosen\": ..., \"rejected\": ... to the entry's columns")
    if stage in ("sft", "kto") and attr.formatting == "alpaca" and not attr.response:
        raise DataError(f"the entry maps no response column, so there is no answer to learn for stage "
                        f"'{stage}' (this is how pre-training text is registered)", dataset=attr.name,
                        field="columns.response", fix="use stage='pt' for plain text, or map the answer "
                        "column: \"columns\": {\"prompt\": ..., \"response\": ...}")


def check_columns(attr: DatasetAttr, stage: str, file: str, rows: list) -> None:
    """Raise DataError when a mapped column appears in no row of the file (a typo in `columns`)."""
    present = set()
    for _, record in rows:
        present.update(record)
    if not rows:
        return
    required = {"prompt"} if attr.formatting == "alpaca" else {"messages"}
    if stage in ("sft", "kto") and attr.formatting == "alpaca":
        required.add("response")
    if stage in RANKING_STAGES:
        required |= {"chosen", "rejected"}
    if stage == "kto":
        required.add("kto_tag")
    for key, column in attr.column_map().items():
        if column in present:
            continue
        if key in attr.explicit_columns or key in required:
            how = "mapped in the entry's columns" if key in attr.explicit_columns else "LLaMA-Factory's default"
            raise DataError(f"column '{column}' ({key}, {how}) is not in the file; its columns are "
                            f"{sorted(present)}", dataset=attr.name, file=file, field=f"columns.{key}",
                            fix=f"set \"columns\": {{\"{key}\": \"<one of {sorted(present)}>\"}} in the entry")


# ------------------------------------------------------------------------------------- one row

def convert_row(attr: DatasetAttr, record: dict, stage: str, dataset_dir: Path, file_dir: Path):
    """One raw row -> (canonical row, None) or (None, (field, reason, fix))."""
    try:
        return _convert(attr, record, stage, dataset_dir, file_dir), None
    except _RowError as err:
        return None, (err.field, err.reason, err.fix)


def _convert(attr, record, stage, dataset_dir, file_dir) -> dict:
    if attr.formatting == "alpaca":
        prompt, response, system, chosen, rejected = _alpaca(attr, record, stage)
    else:
        prompt, response, system, chosen, rejected = _chat(attr, record, stage)
    tools = _tools(attr, record)
    kto_label = None
    if stage == "kto":
        kto_label = record.get(attr.kto_tag)
        if not isinstance(kto_label, bool):
            raise _RowError(attr.kto_tag, f"kto_tag must be true or false, got {kto_label!r}",
                            "write the JSON literal true (good answer) or false (bad answer), not a string")
    if stage in ("sft", "kto"):
        if not response or not isinstance(response[-1]["content"], str) or not response[-1]["content"].strip():
            field = attr.response if attr.formatting == "alpaca" else attr.messages
            raise _RowError(field, "empty answer: the last assistant message has no text",
                            "write the answer the model should learn, or remove the row")
        messages = prompt + response
    elif stage in RANKING_STAGES:
        for name, answer in (("chosen", chosen), ("rejected", rejected)):
            if not answer["content"].strip():
                raise _RowError(getattr(attr, name), f"empty answer: '{name}' has no text",
                                f"write the {'better' if name == 'chosen' else 'worse'} answer")
        if chosen["content"].strip() == rejected["content"].strip():
            raise _RowError(attr.chosen, "chosen and rejected are the same text, so there is nothing to prefer",
                            "make 'rejected' a worse answer than 'chosen'")
        messages = prompt
    elif stage in ("ppo", "grpo"):
        messages = prompt
    else:  # pt
        text = prompt[0]["content"] if prompt else ""
        if not text.strip():
            raise _RowError(attr.prompt or attr.messages, "empty text", "remove the row or write the text")
        messages = [{"role": "assistant", "content": text}]
    media = {kind: _media(attr, record, kind, messages, dataset_dir, file_dir)
             for kind in MEDIA}
    return dict(messages=messages, system=system, tools=tools, **media, chosen=chosen, rejected=rejected,
                kto_label=kto_label)


def _text(value, field: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _RowError(field, f"{what} must be text, got {type(value).__name__}: {str(value)[:60]}",
                        "write it as a JSON string")
    return value


def _alpaca(attr, record, stage):
    prompt = []
    history = record.get(attr.history) if attr.history else None
    if history:
        if not isinstance(history, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
            raise _RowError(attr.history, "history must be a list of [instruction, response] pairs",
                            'write history as [["earlier question", "earlier answer"], ...]')
        for turn, (old_prompt, old_response) in enumerate(history):
            prompt.append({"role": "user", "content": _text(old_prompt, attr.history, f"history[{turn}][0]")})
            prompt.append({"role": "assistant", "content": _text(old_response, attr.history, f"history[{turn}][1]")})
    parts = [_text(record.get(attr.prompt), attr.prompt, "the instruction") if attr.prompt else "",
             _text(record.get(attr.query), attr.query, "the input") if attr.query else ""]
    query = "\n".join(p for p in parts if p)
    if not query.strip():
        raise _RowError(attr.prompt, "empty instruction: the row has no prompt text",
                        f"fill in '{attr.prompt}' (and optionally '{attr.query}')")
    prompt.append({"role": "user", "content": query})
    system = _text(record.get(attr.system), attr.system, "the system prompt") if attr.system else ""
    response, chosen, rejected = [], None, None
    if stage in RANKING_STAGES:
        chosen = {"role": "assistant", "content": _text(record.get(attr.chosen), attr.chosen, "chosen")}
        rejected = {"role": "assistant", "content": _text(record.get(attr.rejected), attr.rejected, "rejected")}
    elif attr.response:
        response = [{"role": "assistant", "content": _text(record.get(attr.response), attr.response, "the answer")}]
    return prompt, response, system, chosen, rejected


def _role_map(attr) -> dict:
    pairs = ((attr.user_tag, "user"), (attr.assistant_tag, "assistant"), (attr.observation_tag, "observation"),
             (attr.function_tag, "function"), (attr.system_tag, "system"))
    return {tag: role for tag, role in pairs if tag}


def _message(attr, message, index: int, roles: dict):
    field = attr.messages
    if not isinstance(message, dict):
        raise _RowError(field, f"message {index} is not an object",
                        f'write each message as {{"{attr.role_tag}": ..., "{attr.content_tag}": ...}}')
    if attr.role_tag not in message or attr.content_tag not in message:
        raise _RowError(field, f"message {index} has keys {sorted(message)}, expected '{attr.role_tag}' and "
                        f"'{attr.content_tag}'", "set the entry's tags.role_tag / tags.content_tag to the keys "
                        "your file uses")
    tag = message[attr.role_tag]
    if attr.formatting == "openai" and tag == attr.assistant_tag and message.get("tool_calls"):
        calls = [call.get("function", call) for call in message["tool_calls"]]
        return "function", json.dumps(calls, ensure_ascii=False)
    if tag not in roles:
        raise _RowError(field, f"message {index} has role {tag!r}, which is none of the entry's tags "
                        f"{sorted(roles)}", "fix the role, or map it in the entry's \"tags\" "
                        "(user_tag, assistant_tag, observation_tag, function_tag, system_tag)")
    if message[attr.content_tag] is None:
        raise _RowError(field, f"message {index}'s content is null",
                        "write the message's text, or remove the message (an empty turn would be trained)")
    return roles[tag], _text(message[attr.content_tag], field, f"message {index}'s content")


def _chat(attr, record, stage):
    messages = record.get(attr.messages)
    if not isinstance(messages, list) or not messages:
        raise _RowError(attr.messages, f"'{attr.messages}' must be a non-empty list of messages, got "
                        f"{type(messages).__name__}", "check the column name in the entry's columns.messages")
    roles = _role_map(attr)
    system = ""
    if attr.system:
        system = _text(record.get(attr.system), attr.system, "the system prompt")
    start = 0
    first = messages[0]
    if attr.system_tag and isinstance(first, dict) and first.get(attr.role_tag) == attr.system_tag:
        if system.strip():
            raise _RowError(attr.system, f"the row has both a '{attr.system}' column and a leading system "
                            "message; only one can be the system prompt",
                            f"keep the system prompt in one place (the '{attr.system}' column or the message)")
        system, start = _text(first.get(attr.content_tag), attr.messages, "the system message"), 1
    aligned = []
    for index in range(start, len(messages)):
        role, content = _message(attr, messages[index], index, roles)
        if role == "observation" and aligned and aligned[-1]["role"] == "observation" and attr.formatting == "openai":
            aligned[-1]["content"] += "\n" + content  # several tool results answer one call
            continue
        aligned.append({"role": role, "content": content})
    for turn, message in enumerate(aligned):
        want = USER_SIDE if turn % 2 == 0 else ASSISTANT_SIDE
        if message["role"] not in want:
            raise _RowError(attr.messages, f"wrong role order: turn {turn} is '{message['role']}' but it "
                            f"should be {' or '.join(want)}",
                            "turns must alternate user -> assistant (observation -> function for tools), "
                            "starting with the user; merge or remove the out-of-place message")
    ranking = stage in RANKING_STAGES
    if len(aligned) % 2 != (1 if ranking else 0):
        need = ("an odd number of messages (the prompt ends with the user; the answers go in chosen / rejected)"
                if ranking else "an even number of messages (user / assistant pairs, ending with the assistant)")
        raise _RowError(attr.messages, f"wrong message count: {len(aligned)} messages after the system "
                        f"prompt, but {stage} needs {need}",
                        "remove the last unanswered message, or add the missing answer")
    chosen = rejected = None
    if ranking:
        prompt, response = aligned, []
        chosen = _answer(attr, record, "chosen", roles)
        rejected = _answer(attr, record, "rejected", roles)
    else:
        prompt, response = aligned[:-1], aligned[-1:]
    return prompt, response, system, chosen, rejected


def _answer(attr, record, name: str, roles: dict) -> dict:
    column = getattr(attr, name)
    value = record.get(column)
    if not isinstance(value, dict):
        raise _RowError(column, f"{name} must be one message object, got {type(value).__name__}",
                        f'write {{"{attr.role_tag}": "{attr.assistant_tag}", "{attr.content_tag}": "..."}}')
    tag = value.get(attr.role_tag)
    if roles.get(tag) not in ASSISTANT_SIDE:
        raise _RowError(column, f"{name} has role {tag!r}; it must be the assistant's "
                        f"('{attr.assistant_tag}' or '{attr.function_tag}')", "fix the role tag")
    return {"role": roles[tag], "content": _text(value.get(attr.content_tag), column, name)}


def _tools(attr, record) -> str:
    if not attr.tools:
        return ""
    value = record.get(attr.tools)
    if value is None or value == "":
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str):
        raise _RowError(attr.tools, f"tools must be JSON text, got {type(value).__name__}", "")
    try:
        json.loads(value)
    except json.JSONDecodeError as err:
        raise _RowError(attr.tools, f"tools is not valid JSON ({err.msg} at column {err.colno})",
                        "write the tool schemas as a JSON list of {name, description, parameters}") from None
    return value


def _media(attr, record, kind: str, messages: list, dataset_dir: Path, file_dir: Path) -> list:
    column = getattr(attr, kind)
    if not column:
        return []
    value = record.get(column)
    if value is None:
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _RowError(column, f"{kind} must be a list of file paths", f'write ["{kind}/1.jpg", ...]')
    placeholder = MEDIA[kind]
    count = sum(len(re.findall(re.escape(placeholder), m["content"])) for m in messages)
    if count != len(value):
        raise _RowError(column, f"{len(value)} {kind} but {count} {placeholder} placeholder(s) in the text",
                        f"put one {placeholder} in the user's message for each file in {kind}, in order")
    paths = []
    for item in value:
        if re.match(r"^[a-z]+://", item):
            paths.append(item)
            continue
        candidates = [Path(item)] if Path(item).is_absolute() else [dataset_dir / item, file_dir / item]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise _RowError(column, f"{kind[:-1]} file {item!r} does not exist",
                            "paths are relative to the data dir (LLaMA-Factory's media_dir)")
        paths.append(str(found.resolve()))
    return paths


def row_issue(attr: DatasetAttr, file: str, row: int, problem) -> RowIssue:
    field, reason, fix = problem
    return RowIssue(attr.name, file, row, field or "", reason, fix)
