"""Export a Template as a self-contained Hugging Face chat template (Jinja), so an exported model
carries the format it was trained with. `tokenizer.apply_chat_template(messages, tokenize=False,
chat_template=template.to_jinja())` gives exactly `template.render(messages)`.

Special tokens are written as literal text (the template's `bos_token`/`eos_token`, or the given
tokenizer's), so the result is the same under any tokenizer. Supported in Jinja: a leading system
message (or the default system prompt), user / assistant / observation (HF's "tool" role too),
thinking (`enable_thinking=` passed to apply_chat_template), and for the qwen tool format the
`tools=` list and assistant `tool_calls` (HF style). Other tool formats, and kit's "function" role
(JSON text that Jinja cannot parse), raise an error in the template instead of rendering wrongly.
"""
from __future__ import annotations

from kit.templates.formatter import SpecialToken

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal(text: str) -> str:
    """A Jinja string literal for `text` (Jinja decodes literals with Python's unicode-escape)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _expr(template, formatter, var: str, tokenizer) -> str:
    """`before + var + after` as a Jinja expression for a formatter's slots."""
    before, after = formatter.split()
    parts = [literal(template.slots_text([s], tokenizer)) for s in before] + [var]
    parts += [literal(template.slots_text([s], tokenizer)) for s in after]
    return " + ".join(parts)


def _fixed(template, slots, tokenizer) -> str:
    text = template.slots_text(list(slots), tokenizer)
    return "{{- " + literal(text) + " -}}" if text else ""


def to_jinja(template, tokenizer=None) -> str:
    """The Jinja chat template of `template` (see the module docstring)."""
    t = template
    open_tag, close_tag = (w.strip() for w in t.thought_words)
    qwen_tools = t.format_tools.tool_format == "qwen"
    j = []
    if t.reasoning:
        j.append("{%- set thinking = enable_thinking if enable_thinking is defined else "
                 + ("true" if t.enable_thinking else "false") + " -%}")
    j.append("{%- set ns = namespace(system='', tools='', fused='') -%}")
    j.append("{%- if messages and messages[0]['role'] == 'system' -%}"
             "{%- set ns.system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
             "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}")
    if t.default_system:
        j.append("{%- if not ns.system -%}{%- set ns.system = " + literal(t.default_system) + " -%}{%- endif -%}")
    if qwen_tools:
        j.append("{%- if tools -%}{%- for tool in tools -%}"
                 "{%- if tool['type'] is defined and tool['type'] == 'function' -%}{%- set wrapped = tool -%}"
                 "{%- else -%}{%- set wrapped = {'type': 'function', 'function': tool} -%}{%- endif -%}"
                 "{%- set ns.tools = ns.tools + '\\n' + (wrapped | tojson) -%}{%- endfor -%}"
                 "{%- set ns.tools = " + _tool_prompt_expr() + " -%}{%- endif -%}")
    else:
        j.append("{%- if tools -%}{{- raise_exception(" + literal(
            f"kit template {t.name!r}: tools in Jinja are supported for the qwen tool format only") + ") -}}{%- endif -%}")
    if t.reasoning:  # a generation prompt's answers are history: no thoughts (unless preserve_thinking)
        j.append("{%- set drop = " + ("false" if t.preserve_thinking else
                 "(add_generation_prompt is defined and add_generation_prompt and loop_messages and "
                 "loop_messages[-1]['role'] in ['user', 'observation', 'tool'])") + " -%}")
    j.append(_fixed(t, t.format_prefix.slots, tokenizer))
    system_expr = _expr(t, t.format_system, "(ns.system + ns.tools)", tokenizer)
    if t.fuse_system:
        j.append("{%- if ns.system or ns.tools -%}{%- set ns.fused = " + system_expr + " -%}{%- endif -%}")
    else:
        j.append("{%- if ns.system or ns.tools -%}{{- " + system_expr + " -}}{%- endif -%}")
    j.append("{%- for message in loop_messages -%}{%- set content = message['content'] or '' -%}")
    if t.fuse_system:
        j.append("{%- if loop.first and message['role'] == 'user' -%}{%- set content = ns.fused + content -%}{%- endif -%}")
    j.append("{%- if message['role'] == 'user' -%}{{- " + _expr(t, t.format_user, "content", tokenizer) + " -}}")
    j.append("{%- elif message['role'] in ['observation', 'tool'] -%}{{- "
             + _expr(t, t.format_observation, "content", tokenizer) + " -}}")
    j.append("{%- elif message['role'] == 'assistant' -%}")
    if t.reasoning:
        j.append("{%- if (drop or not thinking) and " + literal(close_tag) + " in content -%}{%- set content = "
                 "content.split(" + literal(close_tag) + ")[-1].lstrip('\\n') -%}{%- endif -%}")
        j.append("{%- if not drop and " + literal(open_tag) + " not in content and " + literal(close_tag)
                 + " not in content -%}{{- " + literal(t.empty_thought) + " -}}{%- endif -%}")
    if qwen_tools:
        j.append("{%- if message['tool_calls'] is defined and message['tool_calls'] -%}"
                 "{%- set calls = namespace(text='') -%}{%- for call in message['tool_calls'] -%}"
                 "{%- set fn = call['function'] if call['function'] is defined else call -%}"
                 "{%- if not loop.first -%}{%- set calls.text = calls.text + '\\n' -%}{%- endif -%}"
                 "{%- set calls.text = calls.text + '<tool_call>\\n' + ({'name': fn['name'], 'arguments': fn['arguments']}"
                 " | tojson) + '\\n</tool_call>' -%}{%- endfor -%}"
                 "{{- " + _expr(t, t.format_function, "(content + calls.text)", tokenizer) + " -}}"
                 "{%- else -%}{{- " + _expr(t, t.format_assistant, "content", tokenizer) + " -}}{%- endif -%}")
    else:
        j.append("{{- " + _expr(t, t.format_assistant, "content", tokenizer) + " -}}")
    j.append("{%- else -%}{{- raise_exception('kit template: unsupported role ' + message['role'] + "
             "' (function calls: give the assistant message tool_calls)') -}}{%- endif -%}{%- endfor -%}")
    if t.reasoning:
        j.append("{%- if add_generation_prompt and not thinking and loop_messages and "
                 "loop_messages[-1]['role'] in ['user', 'observation', 'tool'] -%}{{- "
                 + literal(t.empty_thought) + " -}}{%- endif -%}")
    return "".join(j)


def _tool_prompt_expr() -> str:
    from kit.templates.tools import _QWEN_PROMPT

    head, tail = _QWEN_PROMPT.split("{tool_text}")
    return literal(head.replace("{{", "{").replace("}}", "}")) + " + ns.tools + " + literal(
        tail.replace("{{", "{").replace("}}", "}"))


__all__ = ["literal", "to_jinja", "SpecialToken"]
