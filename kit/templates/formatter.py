"""Formatters: the small pieces a chat template is made of.

A formatter holds *slots*: literal strings with a `{{content}}` placeholder, and special tokens named
explicitly (`BOS`, `EOS`) because their text depends on the tokenizer (LLaMA-Factory marks them with
`{"bos_token"}` sets; we use a named marker instead). `apply(content=...)` fills the placeholder and
returns the slots, still with the markers, so the caller decides how to turn them into text (render) or
token ids (encode).

    StringFormatter(["<|im_start|>user\\n{{content}}<|im_end|>\\n<|im_start|>assistant\\n"])
    EmptyFormatter([BOS])                      # a fixed prefix, no placeholder
    FunctionFormatter(["{{content}}<|im_end|>\\n"], tool_format="qwen")   # an assistant's tool call
    ToolFormatter(tool_format="qwen")          # the tool schemas, appended to the system prompt

Not here: images/videos/audio placeholders (LLaMA-Factory's mm_plugin) and `{{idx}}` slots.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kit.templates import tools as tool_formats

PLACEHOLDER = "{{content}}"
_ANY_PLACEHOLDER = re.compile(r"\{\{[a-zA-Z_][a-zA-Z0-9_]*\}\}")


@dataclass(frozen=True)
class SpecialToken:
    """A special token named by its job ("bos" or "eos"); its text comes from the tokenizer."""

    name: str

    def __post_init__(self):
        if self.name not in ("bos", "eos"):
            raise ValueError(f"SpecialToken name must be 'bos' or 'eos', got {self.name!r}")

    def __repr__(self) -> str:
        return self.name.upper()


BOS = SpecialToken("bos")
EOS = SpecialToken("eos")
Slot = str | SpecialToken


def _check_slots(slots, owner: str) -> tuple:
    slots = tuple(slots)
    for slot in slots:
        if not isinstance(slot, (str, SpecialToken)):
            raise TypeError(f"{owner}: a slot must be a str, BOS or EOS, got {slot!r} ({type(slot).__name__})")
    return slots


@dataclass(frozen=True)
class EmptyFormatter:
    """Fixed text with no placeholder (a prefix such as BOS or "[gMASK]<sop>")."""

    slots: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "slots", _check_slots(self.slots, "EmptyFormatter"))
        for slot in self.slots:
            if isinstance(slot, str) and _ANY_PLACEHOLDER.search(slot):
                raise ValueError(f"EmptyFormatter must not contain a placeholder, got {slot!r}")

    def apply(self, **_) -> list[Slot]:
        return list(self.slots)


@dataclass(frozen=True)
class StringFormatter:
    """Slots with one `{{content}}` placeholder, filled by `apply(content=...)`."""

    slots: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "slots", _check_slots(self.slots, type(self).__name__))
        if sum(s.count(PLACEHOLDER) for s in self.slots if isinstance(s, str)) != 1:
            raise ValueError(f"{type(self).__name__} needs exactly one {PLACEHOLDER} placeholder, got {self.slots!r}")

    def apply(self, content: str = "", **_) -> list[Slot]:
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, got {type(content).__name__}: {content!r}")
        return [s.replace(PLACEHOLDER, content) if isinstance(s, str) else s for s in self.slots]

    def split(self) -> tuple[list[Slot], list[Slot]]:
        """The slots before and after the placeholder (used to build the Jinja template)."""
        before, after, seen = [], [], False
        for slot in self.slots:
            if isinstance(slot, str) and PLACEHOLDER in slot:
                head, tail = slot.split(PLACEHOLDER)
                before.append(head)
                after.append(tail)
                seen = True
            else:
                (after if seen else before).append(slot)
        return [s for s in before if s != ""], [s for s in after if s != ""]


@dataclass(frozen=True)
class FunctionFormatter(StringFormatter):
    """An assistant's tool call. The message content is JSON: {"name": ..., "arguments": {...}} or a
    list of them; the tool format (qwen, llama3, ...) turns it into the text the model writes."""

    tool_format: str = "default"

    def __post_init__(self):
        super().__post_init__()
        tool_formats.get_tool_format(self.tool_format)

    def apply(self, content: str = "", **_) -> list[Slot]:
        calls = tool_formats.calls_from_json(content)
        return super().apply(content=tool_formats.get_tool_format(self.tool_format).format_calls(calls))


@dataclass(frozen=True)
class ToolFormatter:
    """The tool schemas (JSON text or a list of dicts) as text for the system prompt."""

    tool_format: str = "default"
    slots: tuple = field(default=(), repr=False)

    def __post_init__(self):
        tool_formats.get_tool_format(self.tool_format)

    def apply(self, content="", **_) -> list[Slot]:
        schemas = tool_formats.schemas_from(content)
        return [tool_formats.get_tool_format(self.tool_format).describe(schemas) if schemas else ""]

    def parse(self, text: str):
        """The model's reply -> list of ToolCall, or the text itself when it holds no tool call."""
        return tool_formats.get_tool_format(self.tool_format).parse(text)


def slots_text(slots: list[Slot], bos: str, eos: str) -> str:
    """Join slots into text, writing BOS/EOS as the given literals."""
    return "".join(s if isinstance(s, str) else (bos if s is BOS or s.name == "bos" else eos) for s in slots)


def dumps(obj) -> str:
    """json.dumps as the tool formats use it (non-ASCII kept, like transformers' `tojson`)."""
    return json.dumps(obj, ensure_ascii=False)
