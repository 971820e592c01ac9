"""Dataset widgets: a paged previewer and a validation-report table. They only render what the pure
functions in kit.data.tools / kit.data.validate return; tests drive them by setting `.value`."""
from __future__ import annotations

import html

import ipywidgets as widgets

from kit.data.tools import preview


def _page_html(page) -> str:
    blocks = [f"<b>rows {page.start}&ndash;{page.start + len(page.rows) - 1} of {page.total}</b>"]
    for i, text in enumerate(page.texts):
        blocks.append(f"<div style='border-top:1px solid #ccc;margin-top:4px'><i>row {page.start + i}</i>"
                      f"<pre style='white-space:pre-wrap;margin:2px 0'>{html.escape(text)}</pre></div>")
    return "".join(blocks)


class PreviewPanel(widgets.VBox):
    """Page through a canonical dataset: a slider (0-based page), prev / next buttons and the rows."""

    def __init__(self, dataset, page_size: int = 3, width: int | None = 300):
        self.dataset, self.page_size, self.width = dataset, page_size, width
        first = preview(dataset, 0, page_size, width)
        self.page = widgets.IntSlider(value=0, min=0, max=first.num_pages - 1, description="page")
        self.prev_button = widgets.Button(description="◀ prev", layout=widgets.Layout(width="80px"))
        self.next_button = widgets.Button(description="next ▶", layout=widgets.Layout(width="80px"))
        self.body = widgets.HTML()
        self.prev_button.on_click(lambda _: self._step(-1))
        self.next_button.on_click(lambda _: self._step(1))
        self.page.observe(lambda _: self.render(), names="value")
        super().__init__([widgets.HBox([self.prev_button, self.page, self.next_button]), self.body])
        self.render()

    def _step(self, delta: int) -> None:
        self.page.value = min(max(self.page.min, self.page.value + delta), self.page.max)

    def render(self):
        self.current = preview(self.dataset, self.page.value, self.page_size, self.width)
        self.body.value = _page_html(self.current)
        return self.current


def preview_widget(dataset, page_size: int = 3, width: int | None = 300) -> PreviewPanel:
    return PreviewPanel(dataset, page_size=page_size, width=width)


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
