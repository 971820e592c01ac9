"""Tool-calling formats: how tool schemas enter the system prompt, how the assistant writes a call,
and how a reply is parsed back into calls.

Each format is three pure functions (LLaMA-Factory's tool_utils has the same split):
    describe(schemas) -> str              text appended to the system prompt
    format_calls(calls) -> str            what the assistant writes to call tools
    parse(text) -> list[ToolCall] | str   the inverse of format_calls (the text itself if no call)

Formats: default (ReAct-style "Action: / Action Input:"), qwen (<tool_call> JSON, Qwen2.5/Qwen3),
llama3 (JSON with "parameters"), mistral ([TOOL_CALLS] JSON list), glm4 (name newline JSON).
Not here: executing tools (kit.chat does that) and the newer XML-argument formats (Qwen3.5, GLM-4.5).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple


class ToolCall(NamedTuple):
    """One tool call: the function's name and its arguments (a dict)."""

    name: str
    arguments: dict

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


def _dumps(obj, **kw) -> str:
    return json.dumps(obj, ensure_ascii=False, **kw)


def schemas_from(tools) -> list[dict]:
    """Tool schemas from JSON text (as in canonical rows), a list of dicts, or ""/None (no tools)."""
    if tools is None or tools == "" or tools == []:
        return []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as err:
            raise ValueError(f"tools: not valid JSON ({err}): {tools[:80]!r}") from err
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ValueError(f"tools: expected a JSON list of tool schemas (objects), got {tools!r:.80}")
    for i, tool in enumerate(tools):
        inner = tool.get("function", tool) if tool.get("type") == "function" else tool
        if "name" not in inner:
            raise ValueError(f"tools[{i}]: a tool schema needs a 'name', got {tool!r:.80}")
    return tools


def _unwrap(tool: dict) -> dict:
    return tool.get("function", tool) if tool.get("type") == "function" else tool


def _wrap(tool: dict) -> dict:
    return tool if tool.get("type") == "function" else {"type": "function", "function": tool}


def calls_from_json(content: str) -> list[ToolCall]:
    """A `function` message's content (JSON: one call or a list) -> ToolCall list."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError as err:
        raise ValueError(f"function message: content is not JSON ({err}): {content[:80]!r}") from err
    items = data if isinstance(data, list) else [data]
    calls = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item or "arguments" not in item:
            raise ValueError(f"function message: each call needs 'name' and 'arguments', got {item!r:.80}")
        args = item["arguments"]
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError as err:
                raise ValueError(f"function message: arguments of {item['name']!r} are not JSON: {args!r:.80}") from err
        calls.append(ToolCall(item["name"], args))
    return calls


def _load_object(text: str):
    try:
        return json.loads(text.strip())
    except json.JSONDecodeError:
        return None


# ------------------------------------------------------------------------------------------- default
_DEFAULT_PROMPT = (
    "You have access to the following tools:\n{tool_text}"
    "Use the following format if using a tool:\n```\n"
    "Action: tool name (one of [{tool_names}])\n"
    "Action Input: the input to the tool, in a JSON format representing the kwargs "
    '(e.g. ```{{"input": "hello world", "num_beams": 5}}```)\n```\n'
)


def _default_describe(schemas: list[dict]) -> str:
    blocks, names = [], []
    for tool in map(_unwrap, schemas):
        params = tool.get("parameters", {})
        lines = []
        for pname, p in params.get("properties", {}).items():
            extra = ", required" if pname in params.get("required", []) else ""
            enum = f", should be one of [{', '.join(map(str, p['enum']))}]" if p.get("enum") else ""
            items = f", where each item should be {p['items'].get('type', '')}" if p.get("items") else ""
            lines.append(f"  - {pname} ({p.get('type', '')}{extra}): {p.get('description', '')}{enum}{items}\n")
        blocks.append(f"> Tool Name: {tool['name']}\nTool Description: {tool.get('description', '')}\n"
                      f"Tool Args:\n{''.join(lines)}\n")
        names.append(tool["name"])
    return _DEFAULT_PROMPT.format(tool_text="".join(blocks), tool_names=", ".join(names))


def _default_format(calls: list[ToolCall]) -> str:
    return "\n".join(f"Action: {c.name}\nAction Input: {c.arguments_json}" for c in calls)


_DEFAULT_RE = re.compile(r"Action:\s*([a-zA-Z0-9_.\-]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)", re.DOTALL)


def _default_parse(text: str):
    calls = []
    for name, raw in _DEFAULT_RE.findall(text):
        args = _load_object(raw.strip().strip('"').strip("`"))
        if not isinstance(args, dict):
            return text
        calls.append(ToolCall(name.strip(), args))
    return calls or text


# ---------------------------------------------------------------------------------------------- qwen
_QWEN_PROMPT = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tool_text}"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, '
    '"arguments": <args-json-object>}}\n</tool_call>'
)  # Qwen2.5's published chat template, word for word


def _qwen_describe(schemas: list[dict]) -> str:
    return _QWEN_PROMPT.format(tool_text="".join("\n" + _dumps(_wrap(t)) for t in schemas))


def _qwen_format(calls: list[ToolCall]) -> str:
    return "\n".join(f"<tool_call>\n{_dumps({'name': c.name, 'arguments': c.arguments})}\n</tool_call>" for c in calls)


_QWEN_RE = re.compile(r"<tool_call>(.+?)</tool_call>", re.DOTALL)


def _qwen_parse(text: str):
    calls = []
    for raw in _QWEN_RE.findall(text):
        obj = _load_object(raw)
        if not isinstance(obj, dict) or "name" not in obj or not isinstance(obj.get("arguments", {}), dict):
            return text
        calls.append(ToolCall(obj["name"], obj.get("arguments", {})))
    return calls or text


# -------------------------------------------------------------------------------------------- llama3
_LLAMA3_PROMPT = (
    "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n"
    "You have access to the following functions. To call a function, please respond with JSON for a function call. "
    'Respond in the format {{"name": function name, "parameters": dictionary of argument name and its value}}. '
    "Do not use variables.\n\n{tool_text}"
)
LLAMA3_DATE = "26 Jul 2024"  # Llama 3.1's template default `date_string`; fixed so encodings are reproducible


def _llama3_describe(schemas: list[dict]) -> str:
    return _LLAMA3_PROMPT.format(date=LLAMA3_DATE, tool_text="".join(_dumps(_wrap(t), indent=4) + "\n\n" for t in schemas))


def _llama3_format(calls: list[ToolCall]) -> str:
    objs = [{"name": c.name, "parameters": c.arguments} for c in calls]
    return _dumps(objs[0] if len(objs) == 1 else objs)


def _json_calls(text: str, args_key: str):
    obj = _load_object(text.replace("[TOOL_CALLS]", "", 1))
    items = obj if isinstance(obj, list) else [obj]
    if not items or not all(isinstance(i, dict) and "name" in i and isinstance(i.get(args_key), dict) for i in items):
        return text
    return [ToolCall(i["name"], i[args_key]) for i in items]


# ------------------------------------------------------------------------------------------- mistral
def _mistral_describe(schemas: list[dict]) -> str:
    return "[AVAILABLE_TOOLS] " + _dumps([_wrap(t) for t in schemas]) + "[/AVAILABLE_TOOLS]"


def _mistral_format(calls: list[ToolCall]) -> str:
    return _dumps([{"name": c.name, "arguments": c.arguments} for c in calls])


# ---------------------------------------------------------------------------------------------- glm4
_GLM4_PROMPT = (
    "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
    "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具{tool_text}"
)


def _glm4_describe(schemas: list[dict]) -> str:
    return _GLM4_PROMPT.format(tool_text="".join(
        f"\n\n## {_unwrap(t)['name']}\n\n{_dumps(_unwrap(t), indent=4)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
        for t in schemas))


def _glm4_format(calls: list[ToolCall]) -> str:
    if len(calls) != 1:
        raise ValueError(f"glm4 tool format: one call per message, got {len(calls)}")
    return f"{calls[0].name}\n{calls[0].arguments_json}"


def _glm4_parse(text: str):
    if "\n" not in text:
        return text
    name, raw = text.split("\n", 1)
    args = _load_object(raw)
    return [ToolCall(name.strip(), args)] if isinstance(args, dict) else text


@dataclass(frozen=True)
class ToolFormat:
    name: str
    describe: Callable[[list[dict]], str]
    format_calls: Callable[[list[ToolCall]], str]
    parse: Callable[[str], "list[ToolCall] | str"]


TOOL_FORMATS = {
    f.name: f
    for f in [
        ToolFormat("default", _default_describe, _default_format, _default_parse),
        ToolFormat("qwen", _qwen_describe, _qwen_format, _qwen_parse),
        ToolFormat("llama3", _llama3_describe, _llama3_format, lambda t: _json_calls(t, "parameters")),
        ToolFormat("mistral", _mistral_describe, _mistral_format, lambda t: _json_calls(t, "arguments")),
        ToolFormat("glm4", _glm4_describe, _glm4_format, _glm4_parse),
    ]
}


def get_tool_format(name: str) -> ToolFormat:
    if name not in TOOL_FORMATS:
        raise ValueError(f"unknown tool_format {name!r}; known: {sorted(TOOL_FORMATS)}")
    return TOOL_FORMATS[name]
