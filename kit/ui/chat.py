"""A chat widget over kit.chat.ChatSession: a message box, the history, sampling parameters, the
system prompt, Send and Clear. Every control is built from SamplingParams' fields (default and
help text live there only). Tokens appear in the history as they are generated.

    panel = kit.ui.chat.ChatPanel(session); panel          # in a notebook cell
    panel.input.value = "Who are you?"; panel.send()       # the same thing from code (tests do this)

Left out: editing or regenerating past turns, saving a conversation, several models in one panel.
"""
from __future__ import annotations

import html
from dataclasses import fields

import ipywidgets as widgets

from kit.chat import ChatSession, SamplingParams
from kit.ui.common import panel_text, set_help, with_help

_COLORS = {"user": "#e8f0fe", "assistant": "#f1f3f4", "function": "#fef7e0", "observation": "#e6f4ea"}


def history_html(history: list[dict], pending: str | None = None) -> str:
    """The conversation as HTML boxes, one per message; `pending` is an answer still being written."""
    messages = list(history) + ([{"role": "assistant", "content": pending + " ▌"}] if pending is not None else [])
    parts = []
    for message in messages:
        color = _COLORS.get(message["role"], "#ffffff")
        parts.append(f'<div style="background:{color};padding:6px;margin:4px;border-radius:6px;white-space:pre-wrap">'
                     f"<b>{html.escape(message['role'])}</b>: {html.escape(message['content'])}</div>")
    return "".join(parts) or "<i>(no messages yet)</i>"


TEXT = panel_text("chat")  # {key: (English, Chinese)}; setting labels live on the fields


def _control(f, lang: int = 0):
    value = f.default
    common = dict(value=value, description=f.name, style={"description_width": "140px"},
                  layout=widgets.Layout(width="520px"))
    if isinstance(value, bool):
        return widgets.Checkbox(indent=False, **common)
    low, high, step = f.metadata["slider"]  # SamplingParams' field metadata
    if isinstance(value, int):
        return widgets.IntSlider(min=low, max=high, step=step, **common)
    return widgets.FloatSlider(min=low, max=high, step=step, **common)


def _help(f, lang: int) -> str:
    return f.metadata.get("help_zh", f.metadata["help"]) if lang else f.metadata["help"]


class ChatPanel:
    """Chat with `session` in a notebook; the session keeps the history. Enter in the message box
    sends (as the Send button does); tokens appear as they are generated."""

    def __init__(self, session: ChatSession, lang: int = 0):
        self.session = session
        self.lang = lang
        self.fields = {f.name: f for f in fields(SamplingParams)}
        self.params = {f.name: _control(f) for f in fields(SamplingParams)}
        for name, control in self.params.items():
            control.value = getattr(session.params, name)
        self.param_rows = {name: with_help(c, _help(self.fields[name], lang), width="520px")
                           for name, c in self.params.items()}
        self.system = widgets.Textarea(value=session.system or getattr(session.template, "default_system", "") or "",
                                       style={"description_width": "140px"}, layout=widgets.Layout(width="95%"))
        self.input = widgets.Text(layout=widgets.Layout(width="70%"), style={"description_width": "70px"})
        # Enter in the box: the front end sends a "submit" message (Text.on_submit is deprecated in ipywidgets 8)
        self.input.on_msg(lambda _widget, content, _buffers: content.get("event") == "submit" and self.send())
        self.send_button = widgets.Button(button_style="primary")
        self.clear_button = widgets.Button()
        self.history = widgets.HTML(history_html(session.history))
        self.status = widgets.HTML("")
        self.send_button.on_click(self.send)
        self.clear_button.on_click(self.clear)
        self.settings = widgets.Accordion([widgets.VBox([self.system, *self.param_rows.values()])])
        self.settings.selected_index = None
        self.widget = widgets.VBox([self.history, widgets.HBox([self.input, self.send_button, self.clear_button]),
                                    self.status, self.settings])
        self.set_language(lang)

    def set_language(self, lang: int) -> None:
        self.lang = lang
        t = {key: pair[lang] for key, pair in TEXT.items()}
        self.system.description, self.system.placeholder = t["system"], t["system_hint"]
        self.input.description, self.input.placeholder = t["input"], t["input_hint"]
        self.send_button.description, self.clear_button.description = t["send"], t["clear"]
        self.settings.set_title(0, t["settings"])
        for name, row in self.param_rows.items():
            set_help(row, _help(self.fields[name], lang))
        if not self.session.history:
            self.history.value = f"<i>{t['none_yet']}</i>"

    def read_params(self) -> SamplingParams:
        return SamplingParams(**{name: control.value for name, control in self.params.items()}).validate()

    def send(self, _=None) -> str:
        """Send the input box's text; the answer streams into the history. Returns the answer."""
        message = self.input.value.strip()
        if not message:
            self.status.value = f"<i>{TEXT['empty'][self.lang]}</i>"
            return ""
        try:
            self.session.params = self.read_params()
        except ValueError as exc:
            self.status.value = f"<b style='color:#b00'>{html.escape(str(exc))}</b>"
            return ""
        self.session.system = self.system.value or None
        self.input.value = ""
        self.status.value = f"<i>{TEXT['generating'][self.lang]}</i>"
        shown_history = self.session.history + [{"role": "user", "content": message}]
        answer = ""
        self.pieces = 0
        for piece in self.session.stream(message):
            answer += piece
            self.pieces += 1
            self.history.value = history_html(shown_history, pending=answer)
        self.history.value = history_html(self.session.history)
        self.status.value = ""
        return self.session.history[-1]["content"]

    def clear(self, _=None) -> None:
        self.session.clear()
        self.history.value = history_html([])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
