"""Ollama Modelfiles: a kit chat template as a Go template, and an exact renderer to check it.

    text = kit.ollama.modelfile(templates.get("smollm2"), tokenizer, source="./model.gguf")
    go = kit.ollama.parse_modelfile(text)["template"]
    kit.ollama.render(go, messages, system=None) == templates.get("smollm2").render(messages, ...)

Ollama renders a prompt by executing the Modelfile's TEMPLATE, a Go `text/template`, over
`.System` (the system prompt) and `.Messages` (each `.Role` / `.Content`; roles system, user,
assistant, tool). `go_template(template)` writes, block by block, the same text `Template.render`
writes: the prefix, the system block (or the template's default system prompt), user and tool
(observation) turns that end with the assistant header, answers with their end token, the system
text fused into the first user turn where the template does that (Llama 2, Mistral, Gemma), and the
empty `<think>` block of reasoning templates. Nothing but literal text sits between the actions:
no `{{-`/`-}}` trimming, because in Go `{{-` deletes *all* white space before it, including the
newline the model was trained on (`<|im_start|>assistant\\n{{- if ...` renders without it).

`render(go_text, messages, system)` is a small interpreter for the part of Go's text/template that
this module emits (text, `{{ .Field }}`, `$.Field`, variables with `:=` and `=`, `if / else if /
else`, `range $i, $m := ...`, the functions `eq ne not and or len slice`, and `{{-`/`-}}` trimming
with Go's rules), so the check runs where Go is not installed; unknown fields or functions raise
instead of rendering wrongly. Not in the Go template: tool schemas (`.Tools`) and assistant tool
calls (`.ToolCalls`), thinking text of past answers; prompts that use them need a hand-written
TEMPLATE.
"""
from __future__ import annotations

import re

_MARK = "\x00KIT_CONTENT\x00"
# Ollama's role for a tool result; kit calls it "observation"
OLLAMA_ROLES = {"observation": "tool", "user": "user", "assistant": "assistant", "system": "system"}


class ModelfileError(ValueError):
    """A template that cannot be written as an Ollama TEMPLATE, or a Go template this renderer rejects."""


# ------------------------------------------------------------------------------------- writing

def _go_text(text: str) -> str:
    """Literal text inside a Go template ('{{' cannot appear as text: write it as an action)."""
    return text.replace("{{", '{{ "{{" }}')


def _block(template, formatter, content_action: str, tokenizer) -> str:
    """A formatter's slots as Go text with `content_action` where the content goes."""
    text = template.slots_text(formatter.apply(content=_MARK), tokenizer)
    head, _, tail = text.partition(_MARK)
    return _go_text(head) + content_action + _go_text(tail)


def go_template(template, tokenizer=None) -> str:
    """The Go template (Ollama TEMPLATE) that renders what `template.render` renders.

    BOS/EOS are written as text: the tokenizer's (if given) or the template's."""
    from kit import templates

    t = templates.get(template)
    fixed = lambda slots: _go_text(t.slots_text(list(slots), tokenizer))  # noqa: E731
    system = _block(t, t.format_system, "{{ $.System }}", tokenizer)
    default = _go_text(t.slots_text(t.format_system.apply(content=t.default_system), tokenizer)) if t.default_system else ""
    system_part = "{{ if $.System }}" + system + ("{{ else }}" + default if default else "") + "{{ end }}"
    thought = _go_text(t.empty_thought) if t.reasoning else ""
    generation = "{{ if $last }}" + thought + "{{ end }}" if (t.reasoning and not t.enable_thinking) else ""

    user = _block(t, t.format_user, "{{ .Content }}", tokenizer)
    if t.fuse_system:  # the system block goes inside the first user message, before its content
        fused = _block(t, t.format_user, system_part + "{{ .Content }}", tokenizer)
        user = "{{ if $first }}" + fused + "{{ else }}" + user + "{{ end }}"
    observation = _block(t, t.format_observation, "{{ .Content }}", tokenizer)
    # a conversation that ends with a prompt gets a generation prompt, and then (unless the template
    # preserves thinking) earlier answers carry no empty thought block: $gen says which case this is
    keep = getattr(t, "preserve_thinking", False)
    answer_thought = thought if (keep or not thought) else "{{ if not $gen }}" + thought + "{{ end }}"
    assistant = answer_thought + _block(t, t.format_assistant, "{{ .Content }}", tokenizer)
    gen = ('{{ $gen := false }}{{ range $j, $n := $.Messages }}{{ $gen = or (eq $n.Role "user") (eq $n.Role "tool") }}{{ end }}'
           if thought and not keep else "")
    return (fixed(t.format_prefix.slots) + ("" if t.fuse_system else system_part) + gen
            + "{{ $first := true }}{{ range $i, $m := $.Messages }}"
            + "{{ $last := eq (len (slice $.Messages $i)) 1 }}"
            + '{{ if eq .Role "user" }}' + user + generation + "{{ $first = false }}"
            + '{{ else if eq .Role "tool" }}' + observation + generation + "{{ $first = false }}"
            + '{{ else if eq .Role "assistant" }}' + assistant + "{{ $first = false }}"
            + "{{ end }}{{ end }}")


def modelfile(template, tokenizer=None, source: str = "./model.gguf", stop_words: list[str] | None = None,
              system: str | None = None, parameters: dict | None = None) -> str:
    """An Ollama Modelfile: `FROM source`, the TEMPLATE (go_template), one `PARAMETER stop` per stop
    word (default: the template's stop words plus the tokenizer's EOS), an optional SYSTEM line."""
    from kit import templates

    t = templates.get(template)
    go = go_template(t, tokenizer)
    if '"""' in go:
        raise ModelfileError(f'template {t.name!r} contains """, which cannot sit inside a Modelfile TEMPLATE')
    if stop_words is None:
        stop_words = list(t.stop_words)
        eos = t.special_text(templates.EOS, tokenizer)
        if eos and eos not in stop_words and not t.efficient_eos:
            stop_words.append(eos)
    lines = [f"# Ollama Modelfile written by kit (template {t.name!r}): ollama create NAME -f THIS_FILE", "",
             f"FROM {source}", "", f'TEMPLATE """{go}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    for word in stop_words:
        lines.append(f"PARAMETER stop {_quote(word)}")
    for key, value in (parameters or {}).items():
        lines.append(f"PARAMETER {key} {value}")
    return "\n".join(lines) + "\n"


def _quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def parse_modelfile(text: str) -> dict:
    """{"from", "template", "system", "stop": [...], "parameters": {...}} of a Modelfile."""
    out = {"from": None, "template": None, "system": None, "stop": [], "parameters": {}}
    for key in ("template", "system"):
        match = re.search(rf'^{key.upper()} """(.*?)"""', text, flags=re.S | re.M)
        if match:
            out[key] = match.group(1)
    rest = re.sub(r'^(TEMPLATE|SYSTEM) """.*?"""', "", text, flags=re.S | re.M)
    for line in rest.splitlines():
        if line.startswith("FROM "):
            out["from"] = line[5:].strip()
        elif line.startswith("PARAMETER "):
            name, _, value = line[10:].strip().partition(" ")
            if name == "stop":
                out["stop"].append(_unquote(value))
            else:
                out["parameters"][name] = value
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
    return value


def ollama_messages(messages, system: str | None = None) -> tuple[str, list[dict]]:
    """Kit canonical messages (+ system) -> (.System, .Messages) as Ollama passes them: the system
    prompt stays in the list as a "system" message (Ollama keeps it there) and observation -> tool."""
    messages = list(messages)
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    out = [{"Role": "system", "Content": system}] if system else []
    for i, m in enumerate(messages):
        if m["role"] not in OLLAMA_ROLES or m["role"] == "system":
            raise ModelfileError(f"messages[{i}]: role {m['role']!r} has no Ollama TEMPLATE form here "
                                 f"(supported: user, assistant, observation)")
        out.append({"Role": OLLAMA_ROLES[m["role"]], "Content": m["content"]})
    return system or "", out


# ------------------------------------------------------------------------------------ rendering

_ACTION = re.compile(r"\{\{(- )?\s*(.*?)\s*( -)?\}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*'
                    r'|\$(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?|-?\d+)')


def _lex(text: str) -> list:
    """Text and actions, with Go's trim markers applied (`{{- ` trims white space before, ` -}}` after)."""
    items, pos = [], 0
    for match in _ACTION.finditer(text):
        items.append(["text", text[pos:match.start()]])
        if match.group(1):
            items[-1][1] = items[-1][1].rstrip(" \t\r\n")
        items.append(["action", match.group(2), bool(match.group(3))])
        pos = match.end()
    items.append(["text", text[pos:]])
    for i, item in enumerate(items):
        if item[0] == "action" and item[2] and i + 1 < len(items):
            items[i + 1][1] = items[i + 1][1].lstrip(" \t\r\n")
    return [tuple(item[:2]) for item in items if not (item[0] == "text" and item[1] == "")]


def _parse(items: list, pos: int = 0, stop=("end",), nested: bool = False):
    """Items -> a tree of nodes; returns (nodes, pos, the stop word that ended them)."""
    nodes = []
    while pos < len(items):
        kind, body = items[pos]
        pos += 1
        if kind == "text":
            nodes.append(("text", body))
            continue
        word = body.split(None, 1)[0] if body else ""
        if body.startswith("/*"):
            continue
        if word in ("end", "else") and word in stop:
            return nodes, pos, body
        if word == "if":
            branches, else_nodes = [], []
            cond = body[2:].strip()
            while True:
                inner, pos, ended = _parse(items, pos, stop=("end", "else"), nested=True)
                branches.append((cond, inner))
                if ended == "end":
                    break
                if ended.startswith("else if "):
                    cond = ended[len("else if "):].strip()
                    continue
                else_nodes, pos, _ = _parse(items, pos, stop=("end",), nested=True)
                break
            nodes.append(("if", branches, else_nodes))
        elif word == "range":
            match = re.fullmatch(r"range\s+(?:(\$\w+)\s*,\s*)?(\$\w+)\s*:=\s*(.+)", body, re.S)
            if not match:
                raise ModelfileError(f"unsupported range form {{{{ {body} }}}}")
            inner, pos, _ = _parse(items, pos, stop=("end",), nested=True)
            nodes.append(("range", match.group(1), match.group(2), match.group(3), inner))
        elif word in ("end", "else", "with", "define", "template", "block", "break", "continue"):
            raise ModelfileError(f"unexpected or unsupported action {{{{ {body} }}}}")
        else:
            match = re.fullmatch(r"(\$\w+)\s*(:=|=)\s*(.+)", body, re.S)
            nodes.append(("set", match.group(1), match.group(2), match.group(3)) if match else ("print", body))
    if nested:
        raise ModelfileError("the template ends inside an if/range block: a {{ end }} is missing")
    return nodes, pos, None


def _truth(value) -> bool:
    """Go's truth: false, 0, nil and empty strings/lists/maps are false."""
    return not (value is None or value is False or value == 0 and not isinstance(value, bool) or
                (hasattr(value, "__len__") and len(value) == 0))


def _eq(first, *others):
    if not others:
        raise ModelfileError("eq needs at least two arguments")
    return any(first == other for other in others)


def _slice(seq, *idx):
    if len(idx) > 2:
        raise ModelfileError("slice with more than two indices is not supported")
    return seq[idx[0]:(idx[1] if len(idx) > 1 else None)] if idx else seq


FUNCS = {
    "eq": _eq, "ne": lambda a, b: a != b, "not": lambda a: not _truth(a), "len": len, "slice": _slice,
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
}


class _Scope:
    def __init__(self, data):
        self.frames = [{"$": data}]

    def lookup(self, name):
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise ModelfileError(f"undefined variable {name}")

    def assign(self, name, value):
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise ModelfileError(f"assignment to undeclared variable {name}")


def _field(value, path: str):
    for name in [p for p in path.split(".") if p]:
        if not isinstance(value, dict) or name not in value:
            raise ModelfileError(f"can't evaluate field {name} in {type(value).__name__} "
                                 f"(known: {sorted(value) if isinstance(value, dict) else []})")
        value = value[name]
    return value


def _eval(tokens: list[str], scope: _Scope, dot):
    """Evaluate a command (a function call or a single operand) from its tokens."""
    args = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(tokens[j], 0)
                j += 1
            args.append(("value", _eval(tokens[i + 1:j - 1], scope, dot)))
            i = j
            continue
        args.append(("token", tok))
        i += 1
    values = []
    for kind, item in args:
        if kind == "value":
            values.append(item)
        elif item.startswith('"'):
            values.append(bytes(item[1:-1], "utf-8").decode("unicode_escape") if "\\" in item else item[1:-1])
        elif re.fullmatch(r"-?\d+", item):
            values.append(int(item))
        elif item in ("true", "false"):
            values.append(item == "true")
        elif item.startswith("$"):
            name, _, path = item.partition(".")
            values.append(_field(scope.lookup(name), path))
        elif item.startswith("."):
            values.append(_field(dot, item))
        elif item in FUNCS:
            values.append(FUNCS[item])
        else:
            raise ModelfileError(f"function {item!r} is not supported here (known: {sorted(FUNCS)})")
    if values and callable(values[0]):
        return values[0](*values[1:])
    if len(values) != 1:
        raise ModelfileError(f"cannot evaluate {' '.join(tokens)!r}")
    return values[0]


def _expr(text: str, scope: _Scope, dot):
    tokens = [t for t in _TOKEN.findall(text)]
    if "".join(tokens).replace(" ", "") != text.replace(" ", "").replace("\n", ""):
        raise ModelfileError(f"cannot parse the expression {text!r} (pipes and methods are not supported)")
    return _eval(tokens, scope, dot)


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _run(nodes, scope: _Scope, dot, out: list) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "print":
            out.append(_show(_expr(node[1], scope, dot)))
        elif kind == "set":
            value = _expr(node[3], scope, dot)
            if node[2] == ":=":
                scope.frames[-1][node[1]] = value
            else:
                scope.assign(node[1], value)
        elif kind == "if":
            for cond, body in node[1]:
                if _truth(_expr(cond, scope, dot)):
                    chosen = body
                    break
            else:
                chosen = node[2]
            scope.frames.append({})
            _run(chosen, scope, dot, out)
            scope.frames.pop()
        elif kind == "range":
            _, key_var, value_var, expr, body = node
            for i, item in enumerate(_expr(expr, scope, dot) or []):
                scope.frames.append({value_var: item, **({key_var: i} if key_var else {})})
                _run(body, scope, item, out)
                scope.frames.pop()


def render(go_text: str, messages, system: str | None = None, modelfile_system: str | None = None) -> str:
    """Execute `go_text` as Ollama would for these kit messages (see ollama_messages).
    `modelfile_system`: the Modelfile's SYSTEM, which Ollama uses when the messages bring none."""
    messages = list(messages)
    has_system = bool(system) or bool(messages and messages[0]["role"] == "system")
    system, msgs = ollama_messages(messages, system if has_system else modelfile_system)
    return execute(go_text, {"System": system, "Messages": msgs, "Tools": [], "Response": "", "Prompt": ""})


def execute(go_text: str, data: dict) -> str:
    """Execute a Go template (the subset described in the module docstring) over `data`."""
    nodes, pos, ended = _parse(_lex(go_text))
    if ended is not None:
        raise ModelfileError(f"unexpected {{{{ {ended} }}}} in the template")
    out: list[str] = []
    _run(nodes, _Scope(data), data, out)
    return "".join(out)


# ------------------------------------------------------------------------------------- checking

# conversations a Modelfile is checked on: with and without a system prompt, several turns,
# non-ASCII text, a tool result, ending with a question (generation prompt) or with an answer
CHECK_CONVERSATIONS = (
    ([{"role": "user", "content": "Who are you?"}], None),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
      {"role": "user", "content": "你是谁？"}], "Be brief."),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?\n"}], ""),
    ([{"role": "user", "content": "  spaces and\nnew lines  "}, {"role": "assistant", "content": "ok"},
      {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "Let me look."},
      {"role": "observation", "content": '{"temp_c": 20}'}], "You are a weather bot."),
)


def expected(template, messages, system=None, tokenizer=None) -> str:
    """The training text of a conversation: the generation prompt when it ends with a prompt turn."""
    from kit import templates

    t = templates.get(template)
    return t.render(messages, system=system, add_generation_prompt=messages[-1]["role"] != "assistant",
                    tokenizer=tokenizer)


def check(template, modelfile_text: str | None = None, tokenizer=None, conversations=CHECK_CONVERSATIONS) -> list[dict]:
    """Render each conversation with a Modelfile's TEMPLATE (and SYSTEM) as Ollama would, and with
    `template.render`; returns the mismatches (empty when the Modelfile is exact):
    [{"messages", "system", "expected", "rendered"}]. Default Modelfile: `modelfile(template, tokenizer)`."""
    parsed = parse_modelfile(modelfile(template, tokenizer) if modelfile_text is None else modelfile_text)
    if parsed["template"] is None:
        raise ModelfileError('the Modelfile has no TEMPLATE """..."""')
    bad = []
    for messages, system in conversations:
        want = expected(template, messages, system, tokenizer)
        try:
            got = render(parsed["template"], messages, system, modelfile_system=parsed["system"])
        except ModelfileError as exc:
            got = f"<error: {exc}>"
        if got != want:
            bad.append({"messages": messages, "system": system, "expected": want, "rendered": got})
    return bad


def go_render(go_text: str, cases: list[tuple], go_binary: str) -> list[str]:
    """Render (messages, system) cases with a real Go text/template program (bench/gotemplate,
    built with `go build`): the reference the Python renderer is checked against where Go exists."""
    import json
    import subprocess
    import tempfile

    data = []
    for messages, system in cases:
        system_text, msgs = ollama_messages(messages, system)
        data.append({"System": system_text, "Messages": msgs, "Tools": [], "Response": "", "Prompt": ""})
    with tempfile.NamedTemporaryFile("w", suffix=".tmpl", delete=False, encoding="utf-8") as handle:
        handle.write(go_text)
    try:
        result = subprocess.run([go_binary, handle.name], input=json.dumps(data), capture_output=True,
                                text=True, timeout=120)
    finally:
        import os

        os.unlink(handle.name)
    if result.returncode != 0:
        raise ModelfileError(f"Go text/template failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def modelfile_from_tokenizer(tokenizer, system: str | None, stops: list[str], source: str = ".") -> str:
    """An Ollama Modelfile for the folder it sits in, derived from the tokenizer's chat template.

    The template is rendered with marker contents (system, user, assistant, one turn each) and cut
    into blocks, which become a Go template over `.Messages` (Ollama's format). Needs a template that
    renders a conversation by appending blocks (true of ChatML, Llama 3, Qwen and most others).
    """
    marks = {"system": "@@KIT_SYSTEM@@", "user": "@@KIT_USER@@", "assistant": "@@KIT_ASSISTANT@@"}
    convo = [{"role": r, "content": c} for r, c in marks.items()]

    def render(n, gen=False):
        return tokenizer.apply_chat_template(convo[:n], tokenize=False, add_generation_prompt=gen)

    r1, r2, r3 = render(1), render(2), render(3)
    gen = render(2, gen=True)
    if not (r2.startswith(r1) and r3.startswith(r2) and gen.startswith(r2)):
        raise ValueError("the chat template does not render a conversation block by block; "
                          "write the Ollama Modelfile by hand (ollama_modelfile=False)")
    system_block = r1.replace(marks["system"], "{{ .System }}")
    user_block = r2[len(r1):].replace(marks["user"], "{{ .Content }}")
    assistant_block = r3[len(r2):].replace(marks["assistant"], "{{ .Content }}")
    generation = gen[len(r2):]
    last_turn = ("{{ if $last }}" + generation + "{{ end }}") if generation else ""
    # no {{- trimming: in Go it would also delete the newlines that end the blocks (kit.ollama)
    go = ("{{ if .System }}" + system_block + "{{ end }}"
          + "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
          + '{{ if eq .Role "user" }}' + user_block + last_turn
          + '{{ else if eq .Role "assistant" }}' + assistant_block + "{{ end }}{{ end }}")
    lines = ["# Ollama Modelfile written by kit.export: `ollama create NAME -f Modelfile` in this folder", "",
             f"FROM {source}", "", f'TEMPLATE """{go}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    lines += [f'PARAMETER stop "{word}"' for word in stops]
    return "\n".join(lines) + "\n"
