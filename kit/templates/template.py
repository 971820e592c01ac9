"""The `Template` dataclass: how one model family lays out a conversation, and `render()` to text.

A conversation is cut into *segments*, each a list of slots with a role ("prefix", "system", "user",
"observation", "assistant", "function", "thought") and a side ("prompt" or "response"), grouped by
turn. `render()` joins them into text; `kit.templates.encode` turns the same segments into token ids
and label masks, so text and ids can never disagree. LLaMA-Factory's layout is kept:

    turn 0:  prefix + system(+tools) + user      ->  assistant
    turn t:  user (or observation)               ->  assistant (or function call)

The user slot already ends with the assistant header ("<|im_start|>assistant\\n"), so a conversation
that ends with a user turn always ends with the generation prompt.

Thinking (reasoning=True, LLaMA-Factory's ReasoningTemplate): when an answer has no <think> block, an
empty one "<think>\\n\\n</think>\\n\\n" is added - to the answer (trained) when enable_thinking is True,
or to the prompt (not trained) when it is False; with enable_thinking False, thoughts in answers are
removed. *History* answers (every answer of a generation prompt or a preference prompt, and all but
the last under mask_history) lose their thoughts and get no empty block, as in Qwen3's own template
and LLaMA-Factory (unless preserve_thinking).
Multimodal: an "<image>"/"<video>" placeholder in a message becomes the family's image/video tokens
(e.g. Qwen3-VL's "<|vision_start|><|image_pad|><|vision_end|>"); the processor expands the pad.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kit.templates.formatter import (
    EOS, EmptyFormatter, FunctionFormatter, SpecialToken, StringFormatter, ToolFormatter, slots_text,
)
from kit.templates.tools import ToolCall

PROMPT_ROLES = ("user", "observation")
RESPONSE_ROLES = ("assistant", "function")
ROLES = PROMPT_ROLES + RESPONSE_ROLES


@dataclass(frozen=True)
class Segment:
    """A run of slots with one role, on one side of one turn."""

    role: str
    side: str  # "prompt" (masked unless train_on_prompt) or "response" (trained)
    turn: int
    slots: tuple


@dataclass(frozen=True)
class Template:
    """A chat template. Build one with `kit.templates.register_template`; read one with `get(name)`."""

    name: str
    format_user: StringFormatter
    format_assistant: StringFormatter
    format_system: StringFormatter
    format_function: FunctionFormatter
    format_observation: StringFormatter
    format_tools: ToolFormatter
    format_prefix: EmptyFormatter
    default_system: str = field(default="", metadata={"help": "system prompt used when a row has none"})
    stop_words: tuple = field(default=(), metadata={"help": "strings that end the answer at inference"})
    thought_words: tuple = field(default=("<think>\n", "\n</think>\n\n"), metadata={"help": "open/close of a thought"})
    efficient_eos: bool = field(default=False, metadata={
        "help": "answers carry no end token; one EOS is appended to the whole sequence (GLM-4, Gemma 2)"})
    replace_eos: bool = field(default=False, metadata={
        "help": "the tokenizer's EOS is replaced by stop_words[0] for training (fix_tokenizer does it)"})
    reasoning: bool = field(default=False, metadata={"help": "a thinking template (empty <think> blocks added)"})
    enable_thinking: bool = field(default=True, metadata={"help": "reasoning templates: train/generate thoughts"})
    preserve_thinking: bool = field(default=False, metadata={
        "help": "reasoning templates: keep the thoughts of history answers (LLaMA-Factory's preserve_thinking)"})
    image_token: str = field(default="", metadata={
        "help": "what an <image> placeholder becomes (vision families; empty = left as text)"})
    video_token: str = field(default="", metadata={
        "help": "what a <video> placeholder becomes (vision families; empty = left as text)"})
    fuse_system: bool = field(default=False, metadata={
        "help": "the system text is put inside the first user message (Llama 2, Mistral, Gemma)"})
    bos_token: str = field(default="<s>", metadata={"help": "BOS text used when no tokenizer is given"})
    eos_token: str = field(default="</s>", metadata={"help": "EOS text used when no tokenizer is given"})
    base: str | None = field(default=None, metadata={"help": "the template this one was derived from"})

    # ------------------------------------------------------------------------------------ helpers
    def replace(self, **changes) -> "Template":
        """A copy with some fields changed: `get("qwen3").replace(enable_thinking=False)`."""
        return dataclasses.replace(self, **changes)

    def special_text(self, token: SpecialToken, tokenizer=None) -> str:
        """The text of BOS/EOS: replace_eos makes EOS stop_words[0]; else the tokenizer's, else ours."""
        if token.name == "eos":
            if self.replace_eos and self.stop_words:
                return self.stop_words[0]
            return getattr(tokenizer, "eos_token", None) or self.eos_token
        return getattr(tokenizer, "bos_token", None) or self.bos_token

    def slots_text(self, slots, tokenizer=None) -> str:
        bos = self.special_text(SpecialToken("bos"), tokenizer)
        eos = self.special_text(EOS, tokenizer)
        return slots_text(list(slots), bos, eos)

    @property
    def empty_thought(self) -> str:
        return self.thought_words[0] + self.thought_words[1]

    def has_thought(self, content: str) -> bool:
        return self.thought_words[0].strip() in content or self.thought_words[1].strip() in content

    def remove_thought(self, content: str) -> str:
        """Drop everything up to the last closing tag, then leading newlines (same rule as to_jinja)."""
        close = self.thought_words[1].strip()
        return content.split(close)[-1].lstrip("\n") if close in content else content

    def parse_tool_calls(self, text: str) -> "list[ToolCall] | str":
        """The model's reply -> [ToolCall(name, arguments), ...], or the text when it calls no tool."""
        return self.format_tools.parse(text)

    def stop_token_ids(self, tokenizer) -> list[int]:
        """Ids that end generation: the tokenizer's EOS plus every stop word that is one token."""
        return stop_token_ids(self, tokenizer)

    # ------------------------------------------------------------------------------------ layout
    def segments(self, messages, system=None, tools=None, add_generation_prompt=False,
                 drop_history_thoughts=False) -> list[Segment]:
        """The conversation as segments (see the module docstring). Raises ValueError on bad messages.
        drop_history_thoughts: answers before the last message lose their thoughts (mask_history,
        preference prompts); a generation prompt always drops them."""
        messages, system = split_system(messages, system)
        check_messages(messages)
        messages = [self._with_media(m) for m in messages]
        drop = (drop_history_thoughts or add_generation_prompt) and not self.preserve_thinking
        system_text = system or self.default_system
        tool_text = self.format_tools.apply(content=tools)[0] if tools else ""
        out: list[Segment] = []
        for i, message in enumerate(messages):
            role, content = message["role"], message["content"]
            pretrain = i == 0 and role in RESPONSE_ROLES  # a lone answer: pre-training text
            turn, side = (0, "response") if pretrain else (i // 2, "prompt" if i % 2 == 0 else "response")
            fused = ""
            if i == 0:
                if self.format_prefix.slots:
                    out.append(Segment("prefix", "prompt", 0, tuple(self.format_prefix.apply())))
                if system_text or tool_text:
                    system_slots = self.format_system.apply(content=system_text + tool_text)
                    if self.fuse_system and not pretrain:
                        fused = self.slots_text(system_slots)
                    else:
                        out.append(Segment("system", "prompt", 0, tuple(system_slots)))
            if side == "prompt":
                fmt = self.format_user if role == "user" else self.format_observation
                out.append(Segment(role, side, turn, tuple(fmt.apply(content=fused + content))))
            else:
                out.extend(self._response_segments(role, content, turn, history=drop and i != len(messages) - 1))
        if add_generation_prompt and messages and messages[-1]["role"] in PROMPT_ROLES:
            if self.reasoning and not self.enable_thinking:
                out.append(Segment("thought", "prompt", len(messages) // 2, (self.empty_thought,)))
        return out

    def _with_media(self, message: dict) -> dict:
        content = message["content"]
        for placeholder, token in (("<image>", self.image_token), ("<video>", self.video_token)):
            if token and placeholder in content:
                content = content.replace(placeholder, token)
        return message if content is message["content"] else {**message, "content": content}

    def _response_segments(self, role: str, content: str, turn: int, history: bool = False) -> list[Segment]:
        out = []
        if self.reasoning:
            if not self.enable_thinking or history:
                content = self.remove_thought(content)
            if not history and not self.has_thought(content):
                side = "response" if self.enable_thinking else "prompt"
                out.append(Segment("thought", side, turn, (self.empty_thought,)))
        if role == "assistant":
            out.append(Segment(role, "response", turn, tuple(self.format_assistant.apply(content=content))))
            return out
        thought = ""
        close = self.thought_words[1].strip()
        if close in content:  # a tool call with a thought before it: keep the thought as text
            head, _, rest = content.rpartition(close)
            thought = head + close + rest[: len(rest) - len(rest.lstrip())]
            content = rest.lstrip()
        slots = self.format_function.apply(content=content)
        if thought:
            slots = [thought] + list(slots)
        out.append(Segment(role, "response", turn, tuple(slots)))
        return out

    def render(self, messages, system=None, tools=None, add_generation_prompt=False, tokenizer=None) -> str:
        """The conversation as text. BOS/EOS are written as the tokenizer's (if given) or as
        `bos_token`/`eos_token`. Equals `to_jinja()` rendered by transformers."""
        segs = self.segments(messages, system, tools, add_generation_prompt)
        return "".join(self.slots_text(s.slots, tokenizer) for s in segs)

    def to_jinja(self, tokenizer=None) -> str:
        """A self-contained Hugging Face chat template (special tokens as literals)."""
        from kit.templates.jinja import to_jinja

        return to_jinja(self, tokenizer)

    def describe(self) -> str:
        """A short human summary (for lessons)."""
        demo = self.render([{"role": "user", "content": "{{user}}"}, {"role": "assistant", "content": "{{answer}}"}],
                           system="{{system}}")
        derived = f" (derived from {self.base})" if self.base else ""
        return f"{self.name}{derived}: stop_words={list(self.stop_words)}\n{demo}"


def split_system(messages, system=None):
    """Take a leading {"role": "system"} message out of `messages` (it wins over `system=`)."""
    if not isinstance(messages, (list, tuple)):
        raise TypeError(f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}")
    messages = list(messages)
    if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
        system = messages[0].get("content", "")
        messages = messages[1:]
    return messages, system


def check_messages(messages) -> None:
    """Roles must alternate prompt (user/observation) and answer (assistant/function); a single
    assistant message (pre-training text) is also fine. Errors name the message index."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"messages[{i}]: expected a dict with 'role' and 'content', got {message!r:.80}")
        role = message["role"]
        if role not in ROLES:
            hint = " (a system message may only come first)" if role == "system" else ""
            raise ValueError(f"messages[{i}]: unknown role {role!r}{hint}; roles are {ROLES}")
        if not isinstance(message["content"], str):
            raise ValueError(f"messages[{i}]: content must be a str, got {type(message['content']).__name__}")
        if len(messages) == 1 and role in RESPONSE_ROLES:
            continue
        expected = PROMPT_ROLES if i % 2 == 0 else RESPONSE_ROLES
        if role not in expected:
            raise ValueError(f"messages[{i}]: role {role!r} where {'/'.join(expected)} was expected "
                             "(turns alternate user/observation -> assistant/function)")


def stop_token_ids(template: Template, tokenizer) -> list[int]:
    """The tokenizer's EOS id plus the id of every stop word that is a single token, in order."""
    ids = []
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    for word in template.stop_words:
        word_ids = tokenizer.encode(word, add_special_tokens=False)
        if len(word_ids) == 1 and word_ids[0] not in ids:
            ids.append(word_ids[0])
    return ids
