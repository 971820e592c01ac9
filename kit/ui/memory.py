"""Memory calculator panel: controls -> a stacked bar of the breakdown, GPU fit verdicts, the largest
batch and sequence length that fit, and a table comparing full / freeze / LoRA / QLoRA-8 / QLoRA-4.

The numbers come from `kit.memory.estimate` and `kit.memory.compare` (pure functions); which setting
applies to which method, and how answers are worded, from `kit.memory.rules`. The controls are built
from `MemorySettings`' fields (default, help and Chinese help live there only), each with its help
line visible under it. Figures are drawn
with matplotlib's object API (no pyplot state), so tests can build them headless.
Not here: any arithmetic about bytes.
"""
from __future__ import annotations

import html
from dataclasses import fields

import ipywidgets as widgets

from kit import plots
from kit.memory import COMPONENTS, GIB, Breakdown, MemorySettings, compare, estimate, names, rules
from kit.plots import Figure
from kit.ui.common import LANGS, NONE, from_choice, panel_text, set_help, to_choice, with_help

COLOURS = {
    "weights": "#4c72b0", "quant_constants": "#8c8c8c", "trainable": "#55a868", "weight_copies": "#64b5cd",
    "gradients": "#c44e52", "optimizer_states": "#8172b2", "activations": "#ccb974", "logits_loss": "#dd8452",
    "kv_cache": "#937860", "workspace": "#b0b0b0", "cuda_context": "#404040", "comm_buffers": "#da8bc3",
}
PANEL_METHODS = ["inference", "full", "freeze", "lora", "qlora"]


def breakdown_figure(breakdowns: list[Breakdown] | Breakdown, labels: list[str] | None = None,
                     budget_gib: float | None = None, lang: int = 0) -> Figure:
    """A stacked bar per breakdown (GiB), one colour per component; an optional budget line."""
    if lang:
        plots.cjk_font()  # before the figure exists: its texts take their font family when created
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
        ax.bar(labels, values, bottom=bottoms, color=COLOURS[component], label=Breakdown.label(component, lang))
        bottoms = [x + v for x, v in zip(bottoms, values)]
    for x, top in enumerate(bottoms):
        ax.text(x, top, f"{top:.1f}", ha="center", va="bottom", fontsize=8)
    if budget_gib:
        ax.axhline(budget_gib, color="#c00", linestyle="--", linewidth=1)
        ax.text(len(breakdowns) - 0.5, budget_gib, plots.label(TEXT["budget_line"][0], TEXT["budget_line"][1], lang)
                .format(b=budget_gib), color="#c00", va="bottom", fontsize=8)
    ax.set_ylabel("GiB")
    ax.set_title(plots.label(TEXT["title"][0], TEXT["title"][1], lang).format(model=breakdowns[0].model))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def table_html(rows: list[dict], columns: list[str] | None = None, headers: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    headers = headers or columns
    head = "".join(f"<th style='padding:2px 6px;text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 6px'>{html.escape(str(r.get(c, '')))}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def readable_table_html(rows: list[dict], lang: int = 0) -> str:
    """The method comparison with units in the headers and counts like '4.40 M' (kit.memory.rules)."""
    headers, cells = rules.readable_table(rows, lang)
    head = "".join(f"<th style='padding:2px 8px;text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(c)}</td>" for c in line) + "</tr>"
                   for line in cells)
    return f"<table class='kit-compare' style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def verdicts_html(verdicts: dict[str, str], lang: int = 0) -> str:
    colour = {"fits": "#080", "tight": "#b80", "does not fit": "#c00"}
    return " · ".join(f"<b>{html.escape(gpu)}</b>: <span style='color:{colour[v]}'>{VERDICTS[v][lang]}</span>"
                      for gpu, v in verdicts.items())


VERDICTS = {"fits": ("fits", "放得下"), "tight": ("tight", "勉强"), "does not fit": ("does not fit", "放不下")}
TEXT = panel_text("memory")  # {key: (English, Chinese)}; setting labels live on the fields


def _control(f, lang: int = 0):
    """A widget for one MemorySettings field, labelled in the chosen language (`label_zh`)."""
    meta = f.metadata
    if f.name == "quantization_bit":
        w = widgets.Dropdown(options=[("none", NONE), ("8-bit", 8), ("4-bit", 4)], value=to_choice(f.default))
    elif "choices" in meta:  # allowed values live once, in the field's metadata (kit.settings)
        w = widgets.Dropdown(options=list(meta["choices"]), value=f.default)
    elif f.name == "lora_target":
        w = widgets.Text(value=f.default)
    elif isinstance(f.default, bool):
        w = widgets.Checkbox(value=f.default, indent=False)
    else:
        w = widgets.BoundedIntText(value=f.default, min=meta.get("min", 1), max=meta.get("max", 1 << 20))
    w.description = _label(f, lang)
    w.style = {"description_width": "150px"}
    w.layout = widgets.Layout(width="100%")
    return w


def _label(f, lang: int) -> str:
    return f.metadata.get("label_zh", f.name) if lang else f.name


def _help(f, lang: int) -> str:
    return f.metadata.get("help_zh", f.metadata["help"]) if lang else f.metadata["help"]


class MemoryPanel(widgets.VBox):
    """The calculator. Change `.model`, `.method`, `.budget` or any `.controls[name]`; `.result`,
    `.verdicts`, `.largest`, `.comparison` and the HTML/figure outputs update. An invalid input
    clears every answer (no stale chart or table) and says what is wrong."""

    def __init__(self, model: str = "Qwen2.5-7B", method: str = "qlora", budget_gib: float = 24.0,
                 lang: str = "English", **settings):
        self.lang = LANGS[lang]
        self._updating = True
        style = {"description_width": "150px"}
        self.language = widgets.Dropdown(options=list(LANGS), value=lang, style=style, layout=widgets.Layout(width="100%"))
        self.model = widgets.Dropdown(options=names(), value=model, style=style, layout=widgets.Layout(width="100%"))
        self.method = widgets.Dropdown(options=PANEL_METHODS, value=method, style=style, layout=widgets.Layout(width="100%"))
        self.budget = widgets.BoundedFloatText(value=budget_gib, min=0.5, max=4096, style=style,
                                               layout=widgets.Layout(width="100%"))
        self.fields = {f.name: f for f in fields(MemorySettings)}
        self.controls = {f.name: _control(f, self.lang) for f in fields(MemorySettings)}
        values = rules.adjust_for_method(method, {name: from_choice(w.value) for name, w in self.controls.items()})
        values.update(settings)
        for name, value in values.items():
            self.controls[name].value = to_choice(value) if name == "quantization_bit" else value
        self.boxes = {name: with_help(w, "") for name, w in self.controls.items()}
        self.top = {key: with_help(w, "") for key, w in
                    (("lang", self.language), ("model", self.model), ("method", self.method), ("budget", self.budget))}
        self.summary = widgets.HTML()
        self.verdict_html = widgets.HTML()
        self.comparison_html = widgets.HTML()
        self.plot = widgets.Output()
        self.result: Breakdown | None = None
        self.verdicts: dict[str, str] = {}
        self.largest: dict[str, int] = {}
        self.comparison: list[dict] = []
        self.figure: Figure | None = None
        self.error: str | None = None
        for w in [self.model, self.budget, *self.controls.values()]:
            w.observe(lambda change: self.update(), names="value")
        self.method.observe(lambda change: self._method_changed(), names="value")
        self.language.observe(lambda change: self.set_language(change["new"]), names="value")
        # columns at least 320 px wide: 3 at 1100 px and more, fewer on a narrow page, never cut off
        grid_layout = widgets.Layout(grid_template_columns="repeat(auto-fill, minmax(320px, 1fr))",
                                     grid_gap="0 12px", width="100%")
        self.top_grid = widgets.GridBox(list(self.top.values()), layout=grid_layout)
        self.grid = widgets.GridBox(list(self.boxes.values()), layout=grid_layout)
        super().__init__([self.top_grid, self.grid, self.summary, self.verdict_html, self.plot, self.comparison_html],
                         layout=widgets.Layout(width="100%", max_width="1100px"))
        self._updating = False
        self.set_language(lang)

    def set_language(self, lang: str) -> None:
        self.lang = LANGS[lang]
        if self.language.value != lang:
            self.language.value = lang
        for key, box in self.top.items():
            box.children[0].description = TEXT[key][self.lang]
            set_help(box, TEXT[f"{key}_help"][self.lang])
        self.update()

    def _method_changed(self) -> None:
        values = rules.adjust_for_method(self.method.value, {n: from_choice(w.value) for n, w in self.controls.items()})
        self._updating = True
        self.controls["quantization_bit"].value = to_choice(values["quantization_bit"])
        self._updating = False
        self.update()

    def values(self) -> dict:
        return {name: from_choice(w.value) if name == "quantization_bit" else w.value
                for name, w in self.controls.items()}

    def settings(self) -> dict:
        """The settings estimate() gets (kit.memory.rules.settings_for: only those the method uses)."""
        return rules.settings_for(self.method.value, self.values())

    def _show_applicable(self) -> None:
        used = rules.applicable(self.method.value)
        for name, box in self.boxes.items():
            f = self.fields[name]
            control = box.children[0]
            control.description = _label(f, self.lang)
            control.disabled = name not in used
            note = "" if name in used else f" ({TEXT['not_used'][self.lang]})"
            set_help(box, _help(f, self.lang) + note)

    def _fail(self, message: str) -> None:
        """Show the error and clear every answer so nothing stale stays on the page."""
        self.error = message
        self.result, self.verdicts, self.largest, self.comparison, self.figure = None, {}, {}, [], None
        self.summary.value = f"<span style='color:#c00'>{html.escape(TEXT['error'][self.lang])}: {html.escape(message)}</span>"
        self.verdict_html.value = ""
        self.comparison_html.value = ""
        self.plot.clear_output()

    def update(self) -> None:
        if self._updating:
            return
        self._show_applicable()
        lang = self.lang
        try:
            settings = self.settings()
            b = estimate(self.model.value, self.method.value, **settings)
            budget = self.budget.value
            self.largest = {vary: compare.largest_fitting(self.model.value, self.method.value, budget, vary=vary,
                                                          **{k: v for k, v in settings.items() if k != vary})
                            for vary in ("batch_size", "seq_len")}
            self.comparison = compare.compare_methods(self.model.value, **rules.comparison_settings(self.values()))
        except (ValueError, TypeError) as exc:
            self._fail(str(exc))
            return
        self.error = None
        self.result = b
        self.verdicts = compare.fit_verdicts(b, budget)
        self.summary.value = TEXT["summary"][lang].format(
            total=b.total_gib, peak=html.escape(b.peak_at), trainable=rules.human_count(b.trainable_params),
            budget=budget, bs=rules.largest_text(self.largest["batch_size"], "batch_size", lang),
            sl=rules.largest_text(self.largest["seq_len"], "seq_len", lang),
            seq=self.values()["seq_len"], batch=self.values()["batch_size"])
        self.verdict_html.value = verdicts_html(self.verdicts, lang)
        self.comparison_html.value = readable_table_html(self.comparison, lang)
        self.figure = breakdown_figure(b, budget_gib=budget, lang=lang)
        self.plot.clear_output(wait=True)
        with self.plot:
            from IPython.display import display

            display(self.figure)


def panel(model: str = "Qwen2.5-7B", method: str = "qlora", budget_gib: float = 24.0, lang: str = "English",
          **settings) -> MemoryPanel:
    """`kit.ui.memory.panel()` in a notebook shows the calculator."""
    return MemoryPanel(model, method, budget_gib, lang=lang, **settings)
