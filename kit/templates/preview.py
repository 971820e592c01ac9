"""What the model is trained on, token by token: spans for a previewer, and a mismatch detector.

`preview(...)` returns `Span`s (text, role, trained, token_ids, special): runs of tokens with the same
role / mask / special-ness. The span texts concatenate to `tokenizer.decode(input_ids)` exactly: a
boundary that would cut a character in two (byte-level BPE splits some characters over tokens) is
moved so the span stays whole. `find_mismatch(...)` compares our training encoding with the
tokenizer's own `apply_chat_template` and reports the first differing token.
Not here: HTML and widgets (kit.ui.templates renders these spans).
"""
from __future__ import annotations

from dataclasses import dataclass

from kit.templates.encode import IGNORE_INDEX, encode_prompt, encode_tokens
from kit.templates.registry import get
from kit.templates.template import PROMPT_ROLES, split_system


@dataclass(frozen=True)
class Span:
    text: str
    role: str  # prefix, system, user, observation, assistant, function, thought, eos
    trained: bool  # True when the loss sees these tokens (labels != -100)
    token_ids: tuple
    special: bool  # True for special tokens such as <|im_end|>


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special tokens (BOS/EOS/PAD and added special tokens like <|im_start|>)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(token_id)
    return ids


def spans_from_ids(tokenizer, input_ids, labels, roles) -> list[Span]:
    """Group tokens into spans (pure: works for any ids/labels/roles of equal length)."""
    if not (len(input_ids) == len(labels) == len(roles)):
        raise ValueError(f"input_ids, labels and roles differ in length: {len(input_ids)}, {len(labels)}, {len(roles)}")
    specials = special_ids(tokenizer)
    full = tokenizer.decode(input_ids, skip_special_tokens=False)
    keys = [(r, lab != IGNORE_INDEX, t in specials) for t, lab, r in zip(input_ids, labels, roles)]
    spans, start, done_text = [], 0, ""
    for end in range(1, len(input_ids) + 1):
        if end < len(input_ids) and keys[end] == keys[start]:
            continue
        prefix = full if end == len(input_ids) else tokenizer.decode(input_ids[:end], skip_special_tokens=False)
        if end < len(input_ids) and (not full.startswith(prefix) or prefix.endswith("\ufffd")):
            continue  # this cut would split a character: extend the span
        role, trained, special = keys[start]
        spans.append(Span(prefix[len(done_text):], role, trained, tuple(input_ids[start:end]), special))
        start, done_text = end, prefix
    return spans


def preview(template, tokenizer, messages, system=None, tools=None, cutoff_len=1024,
            train_on_prompt=False, mask_history=False) -> list[Span]:
    """Spans of the training encoding of one conversation (same arguments as `encode`)."""
    enc = encode_tokens(template, tokenizer, messages, system, tools, cutoff_len, train_on_prompt, mask_history)
    return spans_from_ids(tokenizer, enc.input_ids, enc.labels, enc.roles)


@dataclass(frozen=True)
class Mismatch:
    """Result of `find_mismatch`: index is None when both encodings are identical."""

    index: int | None
    ours: tuple
    theirs: tuple
    ours_token: str | None
    theirs_token: str | None
    context: str  # decoded text just before the first difference

    @property
    def matches(self) -> bool:
        return self.index is None

    def summary(self) -> str:
        if self.index is None:
            return f"identical: {len(self.ours)} tokens"
        return (f"first difference at token {self.index} (ours {len(self.ours)} tokens, tokenizer's {len(self.theirs)}): "
                f"ours {self.ours_token!r} vs tokenizer's {self.theirs_token!r}, after ...{self.context[-40:]!r}")


def chat_template_ids(tokenizer, messages, add_generation_prompt=False, **kwargs) -> list[int]:
    """The tokenizer's own apply_chat_template as a plain list of ids (transformers 4 and 5)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt, **kwargs)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def find_mismatch(template, tokenizer, messages, system=None, tools=None, cutoff_len=100_000) -> Mismatch:
    """Compare our encoding with `tokenizer.apply_chat_template` (the tokenizer's own format).

    A conversation ending with an answer is compared as training data (`encode`); one ending with a
    user/observation turn as a generation prompt (`encode_prompt` vs add_generation_prompt=True)."""
    template = get(template)
    msgs, system = split_system(messages, system)
    hf_messages = ([{"role": "system", "content": system}] if system else []) + list(msgs)
    if msgs and msgs[-1].get("role") in PROMPT_ROLES:
        ours = encode_prompt(template, tokenizer, msgs, system, tools)
        theirs = chat_template_ids(tokenizer, hf_messages, add_generation_prompt=True)
    else:
        ours = encode_tokens(template, tokenizer, msgs, system, tools, cutoff_len).input_ids
        theirs = chat_template_ids(tokenizer, hf_messages)
    index = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    if index is None and len(ours) != len(theirs):
        index = min(len(ours), len(theirs))
    if index is None:
        return Mismatch(None, tuple(ours), tuple(theirs), None, None, "")

    def token(ids):
        return tokenizer.decode([ids[index]], skip_special_tokens=False) if index < len(ids) else None

    context = tokenizer.decode(ours[:index], skip_special_tokens=False)
    return Mismatch(index, tuple(ours), tuple(theirs), token(ours), token(theirs), context)
