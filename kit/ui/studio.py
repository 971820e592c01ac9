"""The studio: LLaMA-Factory's web board as one notebook widget, `kit.ui.Studio()`.

    studio = kit.ui.Studio(preset="tiny run on CPU")   # show it as a cell's last value
    studio.train.start(background=False)               # what the Train tab's Start does
    studio.evaluate(); studio.load_chat(); studio.export()   # the other tabs' buttons

Tabs as on the board: General (language, preset, model, method, template, quantization), Train
(settings, dataset picker and preview, the memory estimate of the current settings beside them,
start / abort / resume and the live loss plot), Evaluate & Predict (kit.evaluate on a registered
dataset), Chat (base, adapter or merged model, streaming), Export (kit.export.merge_and_save: merge,
verify, Ollama Modelfile). Each button calls the function the lessons call; the training settings
panel is `kit.ui.train.TrainPanel`, the chat `kit.ui.chat.ChatPanel`.
Not here: multi-GPU launch, GGUF conversion, a web server (kit.serve).
"""
from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as widgets

from kit.train import board
from kit.train.config import ConfigError
from kit.ui.common import LANGS, message, panel_text, set_help, with_help
from kit.ui.train import TrainPanel

TEXT = panel_text("studio")  # {key: (English, Chinese)}; setting labels live on the fields


def _t(key: str, lang: int) -> str:
    return TEXT[key][lang]


class Studio(widgets.VBox):
    """One board with the tabs General, Train, Evaluate & Predict, Chat and Export."""

    def __init__(self, lang: str = "English", preset: str | None = None, config=None):
        self.train = TrainPanel(config, lang=lang)
        if preset:
            self.train.preset.value = preset  # fills the fields (kit.train.board.PRESETS)
        self.lang = LANGS[lang]
        small = {"description_width": "150px"}
        wide = widgets.Layout(width="430px")
        # Train tab: settings | memory estimate side by side, then the run controls and plot
        self.memory_title = widgets.HTML()
        self.memory_html = widgets.HTML()
        self.memory_box = widgets.VBox([self.memory_title, self.memory_html],
                                       layout=widgets.Layout(width="340px", padding="0 0 0 12px"))
        for name in ("model_name_or_path", "finetuning_type", "quantization_bit", "cutoff_len", "lora_rank",
                     "per_device_train_batch_size", "disable_gradient_checkpointing", "fp16", "pure_bf16",
                     "lora_target", "freeze_trainable_layers", "optim"):
            self.train.widgets[name].observe(lambda _: self.update_memory(), names="value")
        train_tab = widgets.VBox([widgets.HBox([self.train.sections, self.memory_box]), self.train.run_box])
        # Evaluate & Predict
        self.eval_source = widgets.Dropdown(options=["base", "adapter", "merged"], value="base", style=small, layout=wide)
        self.eval_dataset = widgets.Dropdown(options=board.dataset_names(stage="sft"), value="identity", style=small,
                                             layout=wide)
        self.eval_samples = widgets.BoundedIntText(value=4, min=1, max=10_000, style=small, layout=wide)
        self.eval_tokens = widgets.BoundedIntText(value=32, min=1, max=4096, style=small, layout=wide)
        self.eval_rows = {key: with_help(w, "", width="430px") for key, w in
                          (("source", self.eval_source), ("eval_dataset", self.eval_dataset),
                           ("eval_samples", self.eval_samples), ("max_new_tokens", self.eval_tokens))}
        self.eval_button = widgets.Button(button_style="primary")
        self.eval_button.on_click(lambda _: self.evaluate())
        self.eval_status = widgets.HTML()
        self.eval_result = None
        eval_tab = widgets.VBox([*self.eval_rows.values(), self.eval_button, self.eval_status])
        # Chat
        self.chat_source = widgets.Dropdown(options=["base", "adapter", "merged"], value="base", style=small, layout=wide)
        self.chat_row = with_help(self.chat_source, "", width="430px")
        self.chat_button = widgets.Button(button_style="primary")
        self.chat_button.on_click(lambda _: self.load_chat())
        self.chat_status = widgets.HTML()
        self.chat_box = widgets.VBox()
        self.chat = None
        chat_tab = widgets.VBox([self.chat_row, self.chat_button, self.chat_status, self.chat_box])
        # Export
        self.adapter_dir = widgets.Text(style=small, layout=wide)
        self.export_dir = widgets.Text(style=small, layout=wide)
        self.export_rows = {key: with_help(w, "", width="430px") for key, w in
                            (("adapter_dir", self.adapter_dir), ("export_dir", self.export_dir))}
        self.export_button = widgets.Button(button_style="primary")
        self.export_button.on_click(lambda _: self.export())
        self.export_status = widgets.HTML()
        self.modelfile_title = widgets.HTML()
        self.modelfile = widgets.Textarea(disabled=True, layout=widgets.Layout(width="100%", height="140px"))
        self.export_report = None
        self.last_export_dir: str | None = None
        export_tab = widgets.VBox([*self.export_rows.values(), self.export_button, self.export_status,
                                   self.modelfile_title, self.modelfile])

        self.tabs = widgets.Tab(children=[self.train.general, train_tab, eval_tab, chat_tab, export_tab])
        self.tabs.add_class("kit-studio")
        super().__init__([self.tabs], layout=widgets.Layout(width="100%", max_width="1100px"))
        self.train.language.observe(lambda change: self.set_language(change["new"]), names="value")
        self.set_language(lang)

    # ------------------------------------------------------------------------- language and memory
    def set_language(self, lang: str) -> None:
        self.lang = LANGS[lang]
        if self.train.language.value != lang:
            self.train.language.value = lang  # the panel relabels itself
        for index, key in enumerate(("general", "train", "evaluate", "chat", "export")):
            self.tabs.set_title(index, _t(key, self.lang))
        for rows in (self.eval_rows, self.export_rows, {"source": self.chat_row}):
            for key, row in rows.items():
                row.children[0].description = _t(key, self.lang)
                set_help(row, _t(f"{key}_help", self.lang))
        self.eval_button.description = _t("run_eval", self.lang)
        self.chat_button.description = _t("load_chat", self.lang)
        self.export_button.description = _t("run_export", self.lang)
        self.modelfile_title.value = f"<b>{_t('modelfile', self.lang)}</b>"
        self.memory_title.value = f"<b>{_t('memory', self.lang)}</b>"
        if self.chat is not None:
            self.chat.set_language(self.lang)
        self.update_memory()

    def update_memory(self) -> None:
        """The memory estimate of the current settings (kit.memory.rules.from_train_config)."""
        from kit.memory import Breakdown, compare, estimate, rules
        from kit.models import HubUnreachableError
        from kit.ui.memory import verdicts_html

        try:
            model, method, settings = rules.from_train_config(self.train.config())
            b = estimate(model, method, **settings)
        except (ConfigError, ValueError, TypeError, OSError, HubUnreachableError) as err:
            self.memory_html.value = message("error", str(err))
            self.memory = None
            return
        self.memory = b
        rows = "".join(f"<tr><td>{html.escape(Breakdown.label(k, self.lang))}</td><td style='text-align:right'>{v:.2f}</td></tr>"
                       for k, v in b.as_dict().items() if k != "total" and v)
        self.memory_html.value = (f"<div style='font-size:12px'><b>{b.total_gib:.2f} GiB</b> · {html.escape(method)} · "
                                  f"{rules.human_count(b.trainable_params)} trainable<br>"
                                  f"{verdicts_html(compare.fit_verdicts(b), self.lang)}"
                                  f"<table style='margin-top:4px'><tr><th>component</th><th>GiB</th></tr>{rows}</table>"
                                  f"<div class='kit-help' style='color:#555;font-size:11px'>"
                                  f"{html.escape(_t('memory_note', self.lang))}</div></div>")

    # ------------------------------------------------------------------------- the other tabs
    def _adapter_dir(self) -> str | None:
        return self.adapter_dir.value.strip() or self.train.last_output_dir

    def _load(self, source: str):
        config = self.train.config()
        return board.load_trained(source, config.model_name_or_path, adapter_dir=self._adapter_dir(),
                                  merged_dir=self.export_dir.value.strip() or self.last_export_dir)

    def evaluate(self):
        """Evaluate & Predict: kit.evaluate.evaluate on the chosen rows; shows the metrics table."""
        from kit import data, templates
        from kit.evaluate import evaluate, results_table

        self.eval_status.value = message("info", _t("working", self.lang))
        try:
            model, tokenizer = self._load(self.eval_source.value)
            rows = data.load_dataset(self.eval_dataset.value, max_samples=self.eval_samples.value, verbose=False)
            template = templates.get(self.train.config().template)
            self.eval_result = evaluate(model, tokenizer, rows, template, name=self.eval_source.value,
                                        max_new_tokens=self.eval_tokens.value)
        except (ConfigError, ValueError, OSError, RuntimeError) as err:
            self.eval_status.value = message("error", f"{_t('error', self.lang)}: {err}")
            return None
        table = results_table({self.eval_source.value: self.eval_result})
        self.eval_status.value = f"<pre class='kit-eval'>{html.escape(table)}</pre>"
        return self.eval_result

    def load_chat(self):
        """Chat: load the chosen model into a streaming ChatPanel."""
        from kit import templates
        from kit.chat import ChatSession, SamplingParams
        from kit.ui.chat import ChatPanel

        self.chat_status.value = message("info", _t("working", self.lang))
        try:
            model, tokenizer = self._load(self.chat_source.value)
            template = templates.get(self.train.config().template)
        except (ConfigError, ValueError, OSError, RuntimeError) as err:
            self.chat_status.value = message("error", f"{_t('error', self.lang)}: {err}")
            return None
        self.chat = ChatPanel(ChatSession(model, tokenizer, template, params=SamplingParams.greedy(64)), lang=self.lang)
        self.chat_box.children = (self.chat.widget,)
        self.chat_status.value = message("ok", f"{_t('done', self.lang)}: {self.chat_source.value}")
        return self.chat

    def export(self):
        """Export: kit.export.merge_and_save (merge, verify logits, write the Ollama Modelfile)."""
        from kit import env
        from kit.export import ExportError, merge_and_save

        adapter = self._adapter_dir()
        if not adapter:
            self.export_status.value = message("error", _t("no_run", self.lang))
            return None
        target = self.export_dir.value.strip() or str(env.work_dir() / "exports" / Path(adapter).name)
        self.export_status.value = message("info", _t("working", self.lang))
        try:
            self.export_report = merge_and_save(adapter, target)
        except (ExportError, ValueError, OSError, RuntimeError) as err:
            self.export_status.value = message("error", f"{_t('error', self.lang)}: {err}")
            return None
        self.last_export_dir = target
        self.export_status.value = f"<pre class='kit-export'>{html.escape(str(self.export_report))}</pre>"
        modelfile = Path(target) / "Modelfile"
        self.modelfile.value = modelfile.read_text(encoding="utf-8") if modelfile.is_file() else ""
        return self.export_report


def studio(lang: str = "English", preset: str | None = None) -> Studio:
    return Studio(lang=lang, preset=preset)
