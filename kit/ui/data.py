"""Dataset widgets: a paged previewer and a validation-report table. They only render what the pure
functions in kit.data.tools / kit.data.validate return; tests drive them by setting `.value`."""
from __future__ import annotations

import html

import ipywidgets as widgets

from kit.data.tools import preview
from kit.ui.common import panel_text


TEXT = panel_text("data")  # {key: (English, Chinese)}; setting labels live on the fields


def _page_html(page, lang: int = 0) -> str:
    head = TEXT["rows"][lang].format(a=page.start, b=page.start + len(page.rows) - 1, n=page.total,
                                     p=page.page + 1, pages=page.num_pages)
    blocks = [f"<b>{head}</b>"]
    for i, text in enumerate(page.texts):
        blocks.append(f"<div style='border-top:1px solid #ccc;margin-top:4px'><i>"
                      f"{TEXT['row'][lang].format(i=page.start + i)}</i>"
                      f"<pre style='white-space:pre-wrap;margin:2px 0'>{html.escape(text)}</pre></div>")
    return "".join(blocks)


class PreviewPanel(widgets.VBox):
    """Page through a canonical dataset: a slider counting pages from 1 (as the "page 1/17" text
    does), prev / next buttons and the rows; lang=1 labels it in Chinese."""

    def __init__(self, dataset, page_size: int = 3, width: int | None = 300, lang: int = 0):
        self.dataset, self.page_size, self.width, self.lang = dataset, page_size, width, lang
        first = preview(dataset, 0, page_size, width)
        self.page = widgets.IntSlider(value=1, min=1, max=first.num_pages, layout=widgets.Layout(width="360px"))
        self.prev_button = widgets.Button(layout=widgets.Layout(width="90px"))
        self.next_button = widgets.Button(layout=widgets.Layout(width="90px"))
        self.body = widgets.HTML()
        self.prev_button.on_click(lambda _: self._step(-1))
        self.next_button.on_click(lambda _: self._step(1))
        self.page.observe(lambda _: self.render(), names="value")
        super().__init__([widgets.HBox([self.prev_button, self.page, self.next_button]), self.body])
        self.set_language(lang)

    def set_language(self, lang: int) -> None:
        self.lang = lang
        self.page.description = TEXT["page"][lang]
        self.prev_button.description = TEXT["prev"][lang]
        self.next_button.description = TEXT["next"][lang]
        self.render()

    def _step(self, delta: int) -> None:
        self.page.value = min(max(self.page.min, self.page.value + delta), self.page.max)

    def render(self):
        self.current = preview(self.dataset, self.page.value - 1, self.page_size, self.width)
        self.body.value = _page_html(self.current, self.lang)
        return self.current


def preview_widget(dataset, page_size: int = 3, width: int | None = 300, lang: int = 0) -> PreviewPanel:
    return PreviewPanel(dataset, page_size=page_size, width=width, lang=lang)


def report_widget(report) -> widgets.HTML:
    """The DatasetReport as a table: one line per invalid row with its field, reason and fix."""
    head = f"<b>{html.escape(report.summary())}</b>"
    if report.ok:
        return widgets.HTML(head)
    rows = "".join(f"<tr><td>{html.escape(i.dataset)}</td><td>{i.row}</td><td>{html.escape(i.field)}</td>"
                   f"<td>{html.escape(i.reason)}</td><td>{html.escape(i.fix)}</td></tr>" for i in report.issues)
    table = ("<table><tr><th>dataset</th><th>row</th><th>field</th><th>reason</th><th>how to fix</th></tr>"
             f"{rows}</table>")
    return widgets.HTML(head + table)
