"""Chat templates: a registry of conversation formats, encoding with label masks, and previews.

    from kit import templates
    t = templates.get("qwen")                      # names(): every registered family
    t.render(messages, system="...")               # the text the model sees
    ids, labels = templates.encode(t, tok, messages, cutoff_len=128)   # -100 on masked tokens
    prompt_ids = templates.encode_prompt(t, tok, messages)             # for model.generate
    tok.apply_chat_template(messages, chat_template=t.to_jinja(), tokenize=False) == t.render(messages)

Files: formatter.py (slots and formatters), tools.py (tool-call formats), template.py (Template,
render), registry.py (register_template, get, names, infer), families.py (the templates),
encode.py (ids and labels), jinja.py (to_jinja), preview.py (spans, mismatch detector).
Not here: widgets (kit.ui.templates), multimodal placeholders, dataset loading (kit.data).
"""
from kit.templates import families as _families  # noqa: F401  (registers the built-in families)
from kit.templates.encode import (
    IGNORE_INDEX, Encoding, encode, encode_pair, encode_pretrain, encode_prompt, encode_tokens, fit_lengths,
    fix_tokenizer,
)
from kit.templates.formatter import (
    BOS, EOS, EmptyFormatter, FunctionFormatter, SpecialToken, StringFormatter, ToolFormatter,
)
from kit.templates.preview import Mismatch, Span, find_mismatch, preview
from kit.templates.registry import TEMPLATES, get, infer, names, register_template
from kit.templates.template import Template
from kit.templates.tools import ToolCall


def parse_tool_calls(template, text: str) -> "list[ToolCall] | str":
    """A model's reply -> [ToolCall(name, arguments)], or the text itself if it calls no tool."""
    return get(template).parse_tool_calls(text)


def stop_token_ids(template, tokenizer) -> list[int]:
    """Ids that end generation for `template` under `tokenizer`: EOS plus one-token stop words."""
    return get(template).stop_token_ids(tokenizer)


def stop_words(template) -> list[str]:
    """The stop words of a template (strings that end an answer)."""
    return list(get(template).stop_words)


__all__ = [
    "BOS", "EOS", "IGNORE_INDEX", "TEMPLATES", "EmptyFormatter", "Encoding", "FunctionFormatter", "Mismatch",
    "Span", "SpecialToken", "StringFormatter", "Template", "ToolCall", "ToolFormatter", "encode", "encode_pair",
    "encode_pretrain", "encode_prompt", "encode_tokens", "find_mismatch", "fit_lengths", "fix_tokenizer", "get",
    "infer", "names", "parse_tool_calls", "preview", "register_template", "stop_token_ids", "stop_words",
]
