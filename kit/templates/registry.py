"""The template registry: `register_template`, `get`, `names`, and `infer` (guess a template name).

A template is registered from *settings* (the same keyword names as LLaMA-Factory's
`register_template`). `base="chatml"` starts from another template's settings, so families are
derived, not copied: only the differences are written down. Defaults follow LLaMA-Factory:
the assistant slot is "{{content}}" + EOS (just "{{content}}" with efficient_eos), a function call
uses the assistant's slots, an observation uses the user's, and the system slot is "{{content}}".

Not here: the families themselves (families.py) and parsing a template out of a tokenizer's Jinja.
"""
from __future__ import annotations

import re

from kit.templates.formatter import EOS, EmptyFormatter, FunctionFormatter, StringFormatter, ToolFormatter
from kit.templates.template import Template

TEMPLATES: dict[str, Template] = {}
_SETTINGS: dict[str, dict] = {}
_FIELDS = {f for f in Template.__dataclass_fields__} - {"name", "base"}


def register_template(name: str, base: str | None = None, replace: bool = False, **settings) -> Template:
    """Register (and return) a template. `base` names a registered template to derive from.

    register_template("qwen", base="chatml", default_system="You are Qwen, ...")
    Raises ValueError for a duplicate name (unless replace=True), an unknown base or setting.
    """
    if name in TEMPLATES and not replace:
        raise ValueError(f"template {name!r} is already registered (pass replace=True to overwrite it)")
    unknown = set(settings) - _FIELDS
    if unknown:
        raise ValueError(f"register_template({name!r}): unknown setting(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    if base is not None and base not in _SETTINGS:
        raise ValueError(f"register_template({name!r}): base template {base!r} is not registered; known: {names()}")
    merged = {**(_SETTINGS[base] if base else {}), **settings}
    template = _build(name, base, merged)
    _SETTINGS[name] = merged
    TEMPLATES[name] = template
    return template


def _build(name: str, base: str | None, s: dict) -> Template:
    s = dict(s)
    for key in ("stop_words", "thought_words"):
        if key in s:
            s[key] = tuple(s[key])
    efficient_eos = s.get("efficient_eos", False)
    content = StringFormatter(["{{content}}"])
    user = s.pop("format_user", None) or content
    assistant = s.pop("format_assistant", None) or StringFormatter(["{{content}}"] if efficient_eos else ["{{content}}", EOS])
    if s.get("replace_eos") and not s.get("stop_words"):
        raise ValueError(f"template {name!r}: replace_eos needs stop_words (stop_words[0] becomes the EOS)")
    return Template(
        name=name,
        base=base,
        format_user=user,
        format_assistant=assistant,
        format_system=s.pop("format_system", None) or content,
        format_function=s.pop("format_function", None) or FunctionFormatter(assistant.slots, tool_format="default"),
        format_observation=s.pop("format_observation", None) or user,
        format_tools=s.pop("format_tools", None) or ToolFormatter("default"),
        format_prefix=s.pop("format_prefix", None) or EmptyFormatter(),
        **s,
    )


def names() -> list[str]:
    """Registered template names, sorted."""
    return sorted(TEMPLATES)


def get(name: "str | Template", **changes) -> Template:
    """The template called `name` (a Template passes through); `changes` give a modified copy,
    e.g. get("qwen3", enable_thinking=False)."""
    if isinstance(name, Template):
        template = name
    elif name in TEMPLATES:
        template = TEMPLATES[name]
    else:
        close = [n for n in names() if name and (n.startswith(str(name)[:3]) or str(name) in n)]
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown template {name!r}.{hint} Known templates: {names()}")
    return template.replace(**changes) if changes else template


# Guess rules, first match wins: (regex on the lower-cased model name, template name).
_NAME_RULES = [
    (r"smollm2", "smollm2"), (r"smollm", "smollm"),
    (r"deepseek-?r1", "deepseekr1"), (r"deepseek-?v3", "deepseek3"), (r"deepseek", "deepseek"),
    (r"qwen3.*(instruct-2507|2507-instruct)", "qwen3_nothink"), (r"qwen3", "qwen3"), (r"qwen", "qwen"),
    (r"llama-?3", "llama3"), (r"llama-?2", "llama2"), (r"vicuna", "vicuna"),
    (r"mistral|mixtral", "mistral"),
    (r"gemma-?3", "gemma3"), (r"gemma", "gemma"),
    (r"phi-?4", "phi4"), (r"phi-?3", "phi"),
    (r"glm-?4", "glm4"), (r"baichuan-?2", "baichuan2"), (r"\byi-", "yi"), (r"alpaca", "alpaca"),
]
# Markers in a tokenizer's own chat template, when the name says nothing.
_JINJA_RULES = [
    ("SmolLM", "smollm2"), ("<|im_sep|>", "phi4"), ("<tool_call>", "qwen"), ("<|im_start|>", "chatml"),
    ("<|start_header_id|>", "llama3"), ("<start_of_turn>", "gemma"), ("<｜Assistant｜>", "deepseek3"),
    ("[gMASK]", "glm4"), ("<|assistant|>", "phi"), ("[INST]", "mistral"),
]


def infer(name_or_tokenizer) -> str:
    """Guess the template name for a model name/path or a tokenizer ("default" if nothing matches).

    infer("Qwen/Qwen2.5-7B-Instruct") == "qwen"; infer(smollm_tokenizer) == "smollm2"."""
    text = name_or_tokenizer if isinstance(name_or_tokenizer, str) else getattr(name_or_tokenizer, "name_or_path", "")
    lowered = (text or "").lower()
    for pattern, template in _NAME_RULES:
        if re.search(pattern, lowered):
            return template
    jinja = getattr(name_or_tokenizer, "chat_template", None)
    if isinstance(jinja, str):
        for marker, template in _JINJA_RULES:
            if marker in jinja:
                return template
    return "default"
