"""Talk to a model: a chat session with a template, a system prompt, history, sampling parameters and
streamed tokens; side-by-side answers of two models (or a model with and without its adapter); one
tool-calling round.

    session = ChatSession(model, tokenizer, template="smollm2", system="You are Kit.")
    for piece in session.stream("Who are you?"):   # text arrives as it is generated
        print(piece, end="")
    session.history                                # [{"role": "user", ...}, {"role": "assistant", ...}]

The prompt is encoded with the same kit.templates template used for training (so the model sees the
format it learned), or with the tokenizer's own chat template when `template=None`. Generation stops
at the tokenizer's EOS and at every stop word of the template (LLaMA-Factory: `Template.stop_words`).

Sampling parameter names and defaults are LLaMA-Factory's `GeneratingArguments`.
Left out: batching, beam search UI, multimodal inputs, vLLM (see kit.serve for an engine switch).
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Iterator


@dataclass
class SamplingParams:
    """How tokens are picked. Names and defaults follow LLaMA-Factory's GeneratingArguments.
    Allowed values are in each field's metadata (kit.settings); "slider" is the range a widget shows."""

    do_sample: bool = field(default=True, metadata={"help": "sample (True) or always take the most likely token (False, greedy)", "help_zh": "采样（True）或总是取最可能的 token（False，贪心）"})
    temperature: float = field(default=0.95, metadata={"help": "divide logits by this before softmax; lower = more focused (0.01-2.0)", "help_zh": "softmax 前把 logits 除以它；越低越集中（0.01-2.0）", "gt": 0.0, "max": 2.0, "slider": (0.01, 2.0, 0.01)})
    top_p: float = field(default=0.7, metadata={"help": "nucleus sampling: keep the smallest set of tokens whose probability adds up to top_p (0-1]", "help_zh": "核采样：保留累计概率达到 top_p 的最小 token 集合 (0-1]", "gt": 0.0, "max": 1.0, "slider": (0.05, 1.0, 0.05)})
    top_k: int = field(default=50, metadata={"help": "keep only the k most likely tokens before sampling (0 = no limit)", "help_zh": "采样前只保留最可能的 k 个 token（0 = 不限）", "min": 0, "integer": True, "slider": (0, 200, 1)})
    max_new_tokens: int = field(default=256, metadata={"help": "most tokens generated for one answer", "help_zh": "一次回答最多生成的 token 数", "min": 1, "integer": True, "slider": (1, 1024, 1)})
    repetition_penalty: float = field(default=1.0, metadata={"help": "> 1.0 makes already-used tokens less likely (1.0 = off)", "help_zh": "> 1.0 让已出现的 token 更不可能（1.0 = 关闭）", "gt": 0.0, "slider": (1.0, 2.0, 0.05)})

    def validate(self) -> "SamplingParams":
        """Each field against the range in its metadata (kit.settings)."""
        from kit import settings

        settings.check(self)
        return self

    def generate_kwargs(self) -> dict:
        """Keyword arguments for `model.generate` (sampling knobs only when do_sample is on)."""
        self.validate()
        kwargs = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                  "repetition_penalty": self.repetition_penalty}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:  # silence "temperature is set but do_sample=False" from the model's generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    @classmethod
    def greedy(cls, max_new_tokens: int = 256) -> "SamplingParams":
        return cls(do_sample=False, max_new_tokens=max_new_tokens)


def sampling_help() -> dict:
    """{field name: help text} for widgets and docs (the dataclass is the only copy)."""
    return {f.name: f.metadata["help"] for f in fields(SamplingParams)}


# ------------------------------------------------------------------------------------ encoding

def _template_obj(template):
    if template is None or not isinstance(template, str):
        return template
    from kit import templates

    return templates.get(template)


def stop_words(template, tokenizer) -> list[str]:
    """The strings that end an answer: the template's stop words plus the tokenizer's EOS token."""
    words = list(getattr(_template_obj(template), "stop_words", None) or [])
    if tokenizer.eos_token and tokenizer.eos_token not in words:
        words.append(tokenizer.eos_token)
    return words


def stop_token_ids(template, tokenizer) -> list[int]:
    """Token ids that end generation: EOS plus every stop word that is a single token."""
    template = _template_obj(template)
    if template is not None:
        from kit import templates

        return templates.stop_token_ids(template, tokenizer)
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def _hf_messages(messages: list[dict], system: str | None) -> list[dict]:
    """Canonical messages -> the roles a tokenizer chat template knows (function -> assistant,
    observation -> tool)."""
    roles = {"function": "assistant", "observation": "tool"}
    out = [{"role": "system", "content": system}] if system else []
    out += [{"role": roles.get(m["role"], m["role"]), "content": m["content"]} for m in messages]
    return out


def encode_prompt(tokenizer, messages: list[dict], template=None, system: str | None = None,
                  tools: str | None = None) -> list[int]:
    """Token ids of a conversation up to the start of the next assistant answer.

    With a kit.templates template (name or object) this is exactly the training encoding of the
    prompt; with `template=None` the tokenizer's own chat template is used.
    """
    if template is not None:
        from kit import templates

        return list(templates.encode_prompt(template, tokenizer, messages, system=system, tools=tools))
    encoded = tokenizer.apply_chat_template(_hf_messages(messages, system), add_generation_prompt=True,
                                            tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


def _strip_stops(text: str, words: list[str]) -> str:
    cut = min([text.find(w) for w in words if w and w in text] or [len(text)])
    return text[:cut].strip()


# ------------------------------------------------------------------------------------- session

def _counting_streamer_class():
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        """TextIteratorStreamer that also counts the generated tokens."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.generated = 0

        def put(self, value):
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.generated += int(value.numel())
            super().put(value)

    return CountingStreamer


def _flag_criterion(check: Callable[[], bool]):
    """A transformers StoppingCriteria that ends generation when `check()` is True."""
    import torch
    from transformers import StoppingCriteria

    class FlagCriterion(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), bool(check()), dtype=torch.bool, device=input_ids.device)

    return FlagCriterion()


def _CountingStreamer(*args, **kwargs):
    return _counting_streamer_class()(*args, **kwargs)


class ChatSession:
    """One conversation with one model.

    model, tokenizer: a causal LM (a PeftModel works) and its tokenizer.
    template: a kit.templates name or Template (the training format), or None for the tokenizer's own.
    system: the system prompt (None = the template's default).
    params: SamplingParams (default LLaMA-Factory's; use SamplingParams.greedy() for repeatable answers).
    disable_adapter: for a PeftModel, answer with the adapter switched off (the base model), so one
        copy of the weights serves both sides of a comparison.
    tools: JSON text of tool schemas offered to the model (canonical `tools` column), or None.
    stop: extra stop strings (beyond the template's stop words and EOS).
    min_new_tokens: no stop word or EOS ends the answer before this many tokens (0 = off; kit.serve's
        `min_tokens`, used to make a request that runs to its limit).
    """

    def __init__(self, model, tokenizer, template=None, system: str | None = None,
                 params: SamplingParams | None = None, disable_adapter: bool = False,
                 tools: str | None = None, name: str = "model", stop: list[str] | None = None,
                 min_new_tokens: int = 0):
        if disable_adapter and not hasattr(model, "disable_adapter"):
            raise ValueError("disable_adapter=True needs a peft.PeftModel (the model has no adapter to switch off)")
        self.model, self.tokenizer = model, tokenizer
        self.template = _template_obj(template)
        self.system = system
        self.params = params or SamplingParams()
        self.disable_adapter = disable_adapter
        self.tools = tools
        self.name = name
        self.extra_stop_words = list(stop or [])
        self.min_new_tokens = int(min_new_tokens)
        self.history: list[dict] = []
        self.last_usage: dict = {}

    # -- the pure parts
    @property
    def stop_words(self) -> list[str]:
        return stop_words(self.template, self.tokenizer) + [w for w in self.extra_stop_words if w]

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return encode_prompt(self.tokenizer, messages, self.template, self.system, self.tools)

    def clear(self) -> None:
        self.history = []

    # -- generation
    def _generate_kwargs(self, ids: list[int]) -> dict:
        import torch

        input_ids = torch.tensor([ids], device=self.model.device)
        single, multi = [], []
        for word in self.stop_words:
            token_id = self.tokenizer.convert_tokens_to_ids(word)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                single.append(token_id)
            else:  # several tokens: transformers' StopStringCriteria watches the decoded text
                multi.append(word)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (single or [None])[0]
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), eos_token_id=single,
                      pad_token_id=pad, **self.params.generate_kwargs())
        if multi:
            kwargs.update(stop_strings=multi, tokenizer=self.tokenizer)
        if self.min_new_tokens:
            kwargs["min_new_tokens"] = self.min_new_tokens
        return kwargs

    def _run_generate(self, **kwargs):
        import torch

        from kit.scoring import adapter_disabled

        with adapter_disabled(self.model, self.disable_adapter), torch.no_grad():
            return self.model.generate(**kwargs)

    def stream_messages(self, messages: list[dict], should_stop: Callable[[], bool] | None = None) -> Iterator[str]:
        """Yield the answer to `messages` piece by piece (does not touch the history).
        `should_stop`: checked after every generated token; when it returns True generation ends there
        (kit.serve uses it for client disconnects and per-request time limits). Closing this generator
        early also stops the generation thread."""
        streamer = _CountingStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        ids = self.prompt_ids(messages)
        kwargs = self._generate_kwargs(ids)
        closed = threading.Event()
        kwargs["stopping_criteria"] = [_flag_criterion(lambda: closed.is_set() or bool(should_stop and should_stop()))]
        errors: list[BaseException] = []

        def work():
            try:
                self._run_generate(streamer=streamer, **kwargs)
            except BaseException as exc:  # re-raised below in the caller's thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        words = self.stop_words
        try:
            for piece in streamer:
                if not piece:
                    continue
                text += piece
                hit = [w for w in words if w and w in text]
                if hit:  # a multi-token stop word is complete: emit what precedes it and stop showing
                    cut = min(text.find(w) for w in hit)
                    shown = len(text) - len(piece)
                    if cut > shown:
                        yield text[shown:cut]
                    break
                yield piece
        finally:  # also on an early close (a reader that went away): no thread keeps generating
            closed.set()
            thread.join()
        if errors:
            raise errors[0]
        # what the answer cost, in tokens (the stop token included, as OpenAI's usage counts it)
        self.last_usage = {"prompt_tokens": len(ids), "completion_tokens": streamer.generated,
                           "hit_limit": streamer.generated >= self.params.max_new_tokens}

    def respond(self, messages: list[dict]) -> str:
        """The whole answer to `messages` (does not touch the history)."""
        return _strip_stops("".join(self.stream_messages(messages)), self.stop_words)

    def stream(self, message: str) -> Iterator[str]:
        """Send a user message; yield the answer as it is generated; both end up in `history`."""
        messages = self.history + [{"role": "user", "content": message}]
        pieces = []
        for piece in self.stream_messages(messages):
            pieces.append(piece)
            yield piece
        self.history = messages + [{"role": "assistant", "content": _strip_stops("".join(pieces), self.stop_words)}]

    def ask(self, message: str) -> str:
        """Send a user message and return the whole answer (kept in `history`)."""
        for _ in self.stream(message):
            pass
        return self.history[-1]["content"]


# -------------------------------------------------------------------------------- side by side

def side_by_side(prompts: list[str], sessions: dict[str, ChatSession] | list[ChatSession]) -> list[dict]:
    """Ask every session each prompt as a fresh single-turn conversation.

    Returns rows {"prompt": ..., <session name>: answer, ...}, ready for `format_table`.
    """
    if not isinstance(sessions, dict):
        sessions = {s.name: s for s in sessions}
    if len(sessions) < 2:
        raise ValueError(f"side_by_side needs at least two sessions, got {list(sessions)}")
    rows = []
    for prompt in prompts:
        row = {"prompt": prompt}
        for name, session in sessions.items():
            row[name] = session.respond([{"role": "user", "content": prompt}])
        rows.append(row)
    return rows


def format_table(rows: list[dict], width: int = 60) -> str:
    """A Markdown table of dict rows (cells cut to `width` characters, newlines flattened)."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value) -> str:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        text = text.replace("\n", " ").replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- tool round

@dataclass
class ToolRound:
    """What happened in one tool-calling round."""

    question: str
    model_call: str                       # the model's first answer (the tool call as it wrote it)
    calls: list[dict]                     # parsed calls: {"name": ..., "arguments": {...}}
    observations: list[str]               # what each tool returned (JSON text)
    answer: str                           # the model's final answer after seeing the observations

    def to_dict(self) -> dict:
        return asdict(self)


def parse_tool_calls(text: str, template=None) -> list[dict]:
    """Parse tool calls out of a model answer with the template's tool-call parser.

    Returns [{"name": str, "arguments": dict}]; [] when the text holds no call.
    """
    from kit import templates

    if template is None:
        raise ValueError("parsing tool calls needs a kit.templates template (the format the model was taught)")
    calls = templates.parse_tool_calls(template, _strip_stops(text, list(getattr(_template_obj(template), "stop_words", ()))))
    if isinstance(calls, str):  # no call: the text itself came back
        return []
    return [{"name": c.name, "arguments": dict(c.arguments)} for c in calls]


def tool_round(session: ChatSession, message: str, functions: dict[str, Callable], first_answer: str | None = None) -> ToolRound:
    """One tool-calling round: ask, parse the call, run the tool, feed its result back, answer.

    `functions` maps tool names to Python callables taking the call's arguments as keywords.
    `first_answer` replaces the model's first answer (to show the round with a known call when a
    small model does not produce one). The whole exchange is appended to `session.history` with
    LLaMA-Factory's roles: user -> function (the call) -> observation (the result) -> assistant.
    """
    messages = session.history + [{"role": "user", "content": message}]
    call_text = first_answer if first_answer is not None else session.respond(messages)
    call_text = _strip_stops(call_text, session.stop_words)
    calls = parse_tool_calls(call_text, session.template)
    observations = []
    if not calls:  # the model answered directly
        session.history = messages + [{"role": "assistant", "content": call_text}]
        return ToolRound(message, call_text, [], [], call_text)
    for call in calls:
        if call["name"] not in functions:
            raise KeyError(f"the model called tool {call['name']!r}, which is not in functions "
                           f"({sorted(functions)}); model answer: {call_text!r}")
        result = functions[call["name"]](**call["arguments"])
        observations.append(result if isinstance(result, str) else json.dumps(result, ensure_ascii=False))
    # canonical rows keep a call as JSON ({"name", "arguments"}, or a list); the template formats it
    call_json = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
    messages = messages + [{"role": "function", "content": call_json}]
    # one observation message (it sits in the user's slot): one result, or a JSON list of several
    joined = observations[0] if len(observations) == 1 else json.dumps(observations, ensure_ascii=False)
    messages += [{"role": "observation", "content": joined}]
    answer = session.respond(messages)
    session.history = messages + [{"role": "assistant", "content": answer}]
    return ToolRound(message, call_text, calls, observations, answer)
