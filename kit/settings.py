"""Allowed values of a setting, kept in its dataclass field's metadata and read by everyone:
`validate()` methods, command lines and widgets.

    quantization_bit: int | None = field(default=None, metadata={"help": "...", "choices": (None, 8, 4)})
    seq_len: int = field(default=1024, metadata={"help": "...", "min": 1})
    top_p: float = field(default=0.7, metadata={"help": "...", "gt": 0.0, "max": 1.0})

Keys: "choices" (a tuple of allowed values), "aliases" ({other spelling: choice}), "min" / "max"
(inclusive bounds), "gt" (exclusive lower bound), "integer" (True: must be an int). A widget takes its
options from `choices(f)` and its range from `bounds(f)`; `check(obj)` raises a ValueError that names
the field, the bad value and what is allowed.
Not here: the settings themselves (kit.memory.MemorySettings, kit.chat.SamplingParams, ...).
"""
from __future__ import annotations

import dataclasses
from typing import Any


def choices(f: dataclasses.Field) -> tuple | None:
    """The allowed values of a field with a fixed list (None: any value within its bounds)."""
    values = f.metadata.get("choices")
    return tuple(values) if values is not None else None


def bounds(f: dataclasses.Field) -> tuple[Any, Any]:
    """(lowest, highest) allowed value; None where unbounded. An exclusive "gt" bound is returned as is
    (a widget cannot show an open interval; the check still excludes it)."""
    low = f.metadata.get("min", f.metadata.get("gt"))
    return low, f.metadata.get("max")


def allowed_text(f: dataclasses.Field) -> str:
    """What is allowed, in words: "one of None, 8, 4", "an integer >= 1", "a number in (0, 1]"."""
    options = choices(f)
    if options is not None:
        return "one of " + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in options)
    kind = "an integer" if f.metadata.get("integer") else "a number"
    low, high, gt = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("gt")
    if (low is not None or gt is not None) and high is not None:
        return f"{kind} in {'(' if gt is not None else '['}{gt if gt is not None else low}, {high}]"
    if gt is not None:
        return f"{kind} > {gt}"
    if low is not None:
        return f"{kind} >= {low}"
    if high is not None:
        return f"{kind} <= {high}"
    return kind


def is_allowed(f: dataclasses.Field, value: Any) -> bool:
    """True when `value` meets the field's metadata (a field without rules allows anything)."""
    options = choices(f)
    if options is not None:
        return value in options or value in f.metadata.get("aliases", {})
    rules = [k for k in ("min", "max", "gt", "integer") if k in f.metadata]
    if not rules:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if f.metadata.get("integer") and not isinstance(value, int):
        return False
    meta = f.metadata
    return (("min" not in meta or value >= meta["min"]) and ("max" not in meta or value <= meta["max"])
            and ("gt" not in meta or value > meta["gt"]))


def check(obj, owner: str | None = None) -> None:
    """Raise ValueError for the first field of dataclass `obj` whose value its metadata does not allow."""
    owner = owner or type(obj).__name__
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not is_allowed(f, value):
            raise ValueError(f"{owner}.{f.name}={value!r} is not allowed; expected {allowed_text(f)}{_nearest(f, value)}")


def _nearest(f: dataclasses.Field, value: Any) -> str:
    """' (did you mean 'zero3'?)' for a misspelt text choice, else ''."""
    import difflib

    options = [v for v in choices(f) or () if isinstance(v, str)]
    near = difflib.get_close_matches(value, options, n=1) if isinstance(value, str) else []
    return f" (did you mean {near[0]!r}?)" if near else ""
