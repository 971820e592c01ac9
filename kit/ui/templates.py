"""Template previewer widget: the training encoding of one conversation, coloured token by token
(green = trained, grey = masked, boxed = special token), two templates side by side, with the
mismatch detector's verdict against the tokenizer's own chat template under each.

The data comes from `kit.templates.preview` / `find_mismatch` (pure functions); this module only
turns spans into HTML (`spans_html`) and wires the controls. Not here: editing the conversation.
"""
from __future__ import annotations

import html

import ipywidgets as widgets

from kit import templates

TRAINED = "#c8f7c5"  # background of tokens the loss sees
MASKED = "#e6e6e6"  # background of tokens with label -100
LEGEND = (f'<span style="background:{TRAINED};padding:0 4px">trained</span> '
          f'<span style="background:{MASKED};padding:0 4px">masked (-100)</span> '
          '<span style="border:1px solid #c00;padding:0 4px">special token</span>')


def _escape(text: str) -> str:
    return html.escape(text).replace("\n", "↵<br>")


def spans_html(spans) -> str:
    """HTML for a list of `kit.templates.Span` (title attribute = role, mask and token ids)."""
    parts = []
    for span in spans:
        style = f"background:{TRAINED if span.trained else MASKED};white-space:pre-wrap"
        if span.special:
            style += ";border:1px solid #c00;border-radius:3px"
        title = f"{span.role} | {'trained' if span.trained else 'masked'} | ids {list(span.token_ids)}"
        parts.append(f'<span class="kit-span kit-{span.role}" style="{style}" title="{html.escape(title)}">'
                     f"{_escape(span.text)}</span>")
    return '<div style="font-family:monospace;font-size:12px;line-height:1.6">' + "".join(parts) + "</div>"


def _panel(template, tokenizer, messages, system, tools, train_on_prompt, mask_history, cutoff_len) -> str:
    spans = templates.preview(template, tokenizer, messages, system=system, tools=tools, cutoff_len=cutoff_len,
                              train_on_prompt=train_on_prompt, mask_history=mask_history)
    n_trained = sum(len(s.token_ids) for s in spans if s.trained)
    n_total = sum(len(s.token_ids) for s in spans)
    verdict = templates.find_mismatch(template, tokenizer, messages, system=system, tools=tools)
    colour = "#080" if verdict.matches else "#c00"
    return (f"<b>{html.escape(str(template))}</b>: {n_total} tokens, {n_trained} trained<br>"
            f'<span style="color:{colour}">vs tokenizer.apply_chat_template: {html.escape(verdict.summary())}</span>'
            + spans_html(spans))


class TemplateComparer(widgets.VBox):
    """Two templates side by side on one conversation. Change `.left.value`, `.right.value`,
    `.train_on_prompt.value` or `.mask_history.value`; `.left_html.value` / `.right_html.value` update."""

    def __init__(self, tokenizer, messages, system=None, tools=None, left="smollm2", right="qwen", cutoff_len=1024):
        self.tokenizer, self.messages, self.system, self.tools, self.cutoff_len = tokenizer, messages, system, tools, cutoff_len
        names = templates.names()
        self.left = widgets.Dropdown(options=names, value=left, description="left")
        self.right = widgets.Dropdown(options=names, value=right, description="right")
        self.train_on_prompt = widgets.Checkbox(value=False, description="train_on_prompt")
        self.mask_history = widgets.Checkbox(value=False, description="mask_history")
        self.left_html = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.right_html = widgets.HTML(layout=widgets.Layout(width="50%"))
        for control in (self.left, self.right, self.train_on_prompt, self.mask_history):
            control.observe(lambda _change: self.refresh(), names="value")
        super().__init__([
            widgets.HBox([self.left, self.right]), widgets.HBox([self.train_on_prompt, self.mask_history]),
            widgets.HTML(LEGEND), widgets.HBox([self.left_html, self.right_html]),
        ])
        self.refresh()

    def refresh(self) -> None:
        for dropdown, target in ((self.left, self.left_html), (self.right, self.right_html)):
            try:
                target.value = _panel(dropdown.value, self.tokenizer, self.messages, self.system, self.tools,
                                      self.train_on_prompt.value, self.mask_history.value, self.cutoff_len)
            except ValueError as err:  # e.g. train_on_prompt with an efficient_eos template
                target.value = f'<b>{html.escape(dropdown.value)}</b>: <span style="color:#c00">{html.escape(str(err))}</span>'


def compare(tokenizer, messages, system=None, tools=None, left="smollm2", right="qwen", cutoff_len=1024):
    """The side-by-side previewer as a widget (display it as a cell's last value)."""
    return TemplateComparer(tokenizer, messages, system, tools, left, right, cutoff_len)


def show(template, tokenizer, messages, system=None, tools=None, train_on_prompt=False, mask_history=False,
         cutoff_len=1024):
    """One template's coloured encoding as an HTML widget."""
    return widgets.HTML(_panel(template, tokenizer, messages, system, tools, train_on_prompt, mask_history, cutoff_len))
