"""Memory calculator panel: controls -> a stacked bar of the breakdown, GPU fit verdicts, the largest
batch and sequence length that fit, and a table comparing full / freeze / LoRA / QLoRA-8 / QLoRA-4.

The numbers come from `kit.memory.estimate` and `kit.memory.compare` (pure functions); the controls
are built from `MemorySettings`' fields (default and help text live there only). Figures are drawn
with matplotlib's object API (no pyplot state), so tests can build them headless.
Not here: any arithmetic about bytes.
"""
from __future__ import annotations

import html
from dataclasses import fields

import ipywidgets as widgets
from kit.plots import Figure

from kit.memory import COMPONENTS, GIB, Breakdown, MemorySettings, compare, names
from kit.settings import bounds, choices

COLOURS = {
    "weights": "#4c72b0", "quant_constants": "#8c8c8c", "trainable": "#55a868", "weight_copies": "#64b5cd",
    "gradients": "#c44e52", "optimizer_states": "#8172b2", "activations": "#ccb974", "logits_loss": "#dd8452",
    "kv_cache": "#937860", "workspace": "#b0b0b0", "cuda_context": "#404040",
}
PANEL_METHODS = ["inference", "full", "freeze", "lora", "qlora"]


def breakdown_figure(breakdowns: list[Breakdown] | Breakdown, labels: list[str] | None = None,
                     budget_gib: float | None = None) -> Figure:
    """A stacked bar per breakdown (GiB), one colour per component; an optional budget line."""
    if isinstance(breakdowns, Breakdown):
        breakdowns = [breakdowns]
    labels = labels or [f"{b.method}" for b in breakdowns]
    fig = Figure(figsize=(max(4.0, 1.4 * len(breakdowns) + 2.5), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    bottoms = [0.0] * len(breakdowns)
    for component in COMPONENTS:
        values = [getattr(b, component) / GIB for b in breakdowns]
        if not any(values):
            continue
        ax.bar(labels, values, bottom=bottoms, color=COLOURS[component], label=component.replace("_", " "))
        bottoms = [x + v for x, v in zip(bottoms, values)]
    for x, top in enumerate(bottoms):
        ax.text(x, top, f"{top:.1f}", ha="center", va="bottom", fontsize=8)
    if budget_gib:
        ax.axhline(budget_gib, color="#c00", linestyle="--", linewidth=1)
        ax.text(len(breakdowns) - 0.5, budget_gib, f" budget {budget_gib:g} GiB", color="#c00", va="bottom", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title(f"{breakdowns[0].model}: peak GPU memory")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def table_html(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    head = "".join(f"<th style='padding:2px 6px'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 6px'>{html.escape(str(r.get(c, '')))}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def verdicts_html(verdicts: dict[str, str]) -> str:
    colour = {"fits": "#080", "tight": "#b80", "does not fit": "#c00"}
    return " · ".join(f"<b>{html.escape(gpu)}</b>: <span style='color:{colour[v]}'>{v}</span>"
                      for gpu, v in verdicts.items())


def _control(f):
    """A widget for one MemorySettings field, labelled by its name, with its help text as tooltip."""
    help_text = f.metadata.get("help", "")
    style = {"description_width": "170px"}
    options = choices(f)  # allowed values live in MemorySettings' field metadata
    if f.name == "quantization_bit":
        w = widgets.Dropdown(options=[("none" if v is None else f"{v}-bit", v) for v in options], value=f.default)
    elif options is not None:
        w = widgets.Dropdown(options=list(options), value=f.default)
    elif f.name == "lora_target":
        w = widgets.Text(value=f.default)
    elif isinstance(f.default, bool):
        w = widgets.Checkbox(value=f.default, indent=False)
    else:
        low, high = bounds(f)
        w = widgets.BoundedIntText(value=f.default, min=low, max=high if high is not None else 1 << 20)
    w.description = f.name
    w.description_tooltip = help_text
    w.tooltip = help_text
    w.style = style
    return w


class MemoryPanel(widgets.VBox):
    """The calculator. Change `.model`, `.method`, `.budget` or any `.controls[name]`; `.result`,
    `.verdicts`, `.largest`, `.comparison` and the HTML/figure outputs update."""

    def __init__(self, model: str = "Qwen2.5-7B", method: str = "qlora", budget_gib: float = 24.0, **settings):
        self.model = widgets.Dropdown(options=names(), value=model, description="model")
        self.method = widgets.Dropdown(options=PANEL_METHODS, value=method, description="method")
        self.budget = widgets.BoundedFloatText(value=budget_gib, min=0.5, max=4096, description="budget GiB")
        self.controls = {f.name: _control(f) for f in fields(MemorySettings)}
        for name, value in settings.items():
            self.controls[name].value = value
        self.summary = widgets.HTML()
        self.verdict_html = widgets.HTML()
        self.comparison_html = widgets.HTML()
        self.plot = widgets.Output()
        self.result: Breakdown | None = None
        self.verdicts: dict[str, str] = {}
        self.largest: dict[str, int] = {}
        self.comparison: list[dict] = []
        self.figure: Figure | None = None
        for w in [self.model, self.method, self.budget, *self.controls.values()]:
            w.observe(lambda change: self.update(), names="value")
        grid = widgets.GridBox(list(self.controls.values()),
                               layout=widgets.Layout(grid_template_columns="repeat(3, 1fr)"))
        super().__init__([widgets.HBox([self.model, self.method, self.budget]), grid, self.summary,
                          self.verdict_html, self.plot, self.comparison_html])
        self.update()

    def settings(self) -> dict:
        return compare.settings_for_method(self.method.value, {name: w.value for name, w in self.controls.items()})

    def update(self) -> None:
        settings = self.settings()
        try:
            view = compare.panel_view(self.model.value, self.method.value, self.budget.value, settings)
        except (ValueError, TypeError) as exc:
            self.summary.value = f"<span style='color:#c00'>{html.escape(str(exc))}</span>"
            return
        b = self.result = view["breakdown"]
        self.verdicts, self.largest = view["verdicts"], view["largest"]
        self.summary.value = (f"<b>{b.total_gib:.2f} GiB</b> at the peak ({html.escape(b.peak_at)}), "
                              f"{b.trainable_params:,} trainable parameters. Within {self.budget.value:g} GiB: "
                              f"batch_size up to <b>{self.largest['batch_size']}</b> at seq_len {settings['seq_len']}, "
                              f"seq_len up to <b>{self.largest['seq_len']}</b> at batch_size {settings['batch_size']}.")
        self.verdict_html.value = verdicts_html(self.verdicts)
        self.comparison = view["comparison"]
        self.comparison_html.value = table_html(self.comparison, ["method", "total_gib", "trainable_params", "weights",
                                                                  "optimizer_states", "activations", "logits_loss"])
        self.figure = breakdown_figure(b, budget_gib=self.budget.value)
        self.plot.clear_output(wait=True)
        with self.plot:
            from IPython.display import display

            display(self.figure)


def panel(model: str = "Qwen2.5-7B", method: str = "qlora", budget_gib: float = 24.0, **settings) -> MemoryPanel:
    """`kit.ui.memory.panel()` in a notebook shows the calculator."""
    return MemoryPanel(model, method, budget_gib, **settings)
