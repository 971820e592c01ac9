"""Training panel: LLaMA-Factory's web-UI "Train" page as ipywidgets, built from `TrainConfig`'s fields.

    panel = kit.ui.train.TrainPanel()          # or TrainPanel(config) to start from a config
    panel                                      # show it in a notebook
    panel.config()                             # the TrainConfig the widgets describe
    panel.start(background=False)              # what the start button does (kit.train.run)

Every setting widget comes from a dataclass field of `kit.train.TrainConfig`: its default, its help
text ("help" / "help_zh", shown as a line under the control) and its English / Chinese label ("label" /
"label_zh" in the field metadata). The rules (presets, output folders, dataset names) are pure
functions in `kit.train.board`. The only
strings kept here are the panel's own (buttons, tab and group titles) in `TEXT`. Groups follow
LLaMA-Factory's UI: general settings on top (model, method, quantization, template, acceleration), then
the train tab (stage and data with a dataset preview, hyper-parameters, LoRA, freeze, GaLore,
RLHF, output / monitoring, other). Buttons: preview command, save / load arguments (YAML), start,
abort. Tests drive it by setting `panel.widgets[name].value` and calling the button handlers.
Not here: evaluation, chat and export tabs (kit.ui.chat, kit.evaluate, kit.export); multi-GPU launch.
"""
from __future__ import annotations

import dataclasses
import html
import threading
import typing
from pathlib import Path

import ipywidgets as widgets

from kit.train import board
from kit.train.config import ConfigError, TrainConfig
from kit.ui.common import LANGS, choice_options, from_choice, panel_text, set_help, to_choice, with_help

TEXT = panel_text("train")  # {key: (English, Chinese)}; setting labels live on the fields

GENERAL = ["model_name_or_path", "adapter_name_or_path", "finetuning_type", "quantization_bit",
           "quantization_method", "template", "flash_attn", "disable_gradient_checkpointing",
           "use_reentrant_gc", "enable_liger_kernel"]
GROUPS = {
    "data": ["stage", "dataset_dir", "dataset", "eval_dataset", "cutoff_len", "max_samples", "val_size",
             "train_on_prompt", "mask_history", "packing", "neat_packing", "disable_shuffling"],
    "hyper": ["learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
              "gradient_accumulation_steps", "lr_scheduler_type", "warmup_ratio", "warmup_steps",
              "max_grad_norm", "weight_decay", "optim", "neftune_noise_alpha", "seed", "bf16", "fp16",
              "pure_bf16", "torch_compile", "torch_compile_mode", "cuda_graphs", "logging_nan_inf_filter",
              "dataloader_num_workers"],
    "lora": ["lora_rank", "lora_alpha", "lora_dropout", "lora_target", "additional_target", "use_rslora",
             "use_dora", "quantization_type", "double_quantization"],
    "freeze": ["freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules"],
    "galore": ["use_galore", "galore_target", "galore_rank", "galore_update_interval", "galore_scale",
               "galore_proj_type", "galore_layerwise"],
    "rlhf": ["pref_beta", "pref_ftx", "pref_loss", "dpo_label_smoothing", "simpo_gamma", "kto_chosen_weight",
             "kto_rejected_weight", "ref_model", "ref_model_adapters", "ref_model_quantization_bit",
             "reward_model", "reward_model_adapters", "reward_model_quantization_bit", "reward_model_type",
             "ppo_buffer_size", "ppo_epochs", "ppo_score_norm", "ppo_target", "ppo_whiten_rewards"],
    "output": ["output_dir", "overwrite_output_dir", "logging_steps", "save_steps", "save_total_limit",
               "eval_strategy", "eval_steps", "per_device_eval_batch_size", "report_to", "plot_loss"],
}


def text(key: str, lang: int = 0) -> str:
    return TEXT[key][lang]


def field_label(f: dataclasses.Field, lang: int = 0) -> str:
    return f.metadata.get("label_zh" if lang else "label", f.name) or f.name


def _base_type(hint):
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    return base, optional


def make_widget(f: dataclasses.Field, hint, value, lang: int = 0) -> widgets.Widget:
    """One widget for a setting: Dropdown for choices (None shows as "none"), Checkbox for bool,
    IntText / FloatText for numbers, Text for strings and optional numbers ("" = None); the dataset
    field is a Combobox listing the registered names. Tooltip = the field's help."""
    base, optional = _base_type(hint)
    common = dict(description=field_label(f, lang), description_tooltip=board.field_help(f, lang),
                  style={"description_width": "170px"}, layout=widgets.Layout(width="430px"))
    if "choices" in f.metadata:
        return widgets.Dropdown(options=choice_options(f.metadata["choices"]), value=to_choice(value), **common)
    if base is bool:
        return widgets.Checkbox(value=bool(value), indent=False, **common)
    if base is int and not optional:
        return widgets.IntText(value=value, **common)
    if base is float and not optional and f.name != "learning_rate":
        return widgets.FloatText(value=value, **common)
    if f.name in ("dataset", "eval_dataset"):
        return widgets.Combobox(value="" if value is None else str(value), ensure_option=False,
                                placeholder="identity, alpaca_en_demo, ...", **common)
    return widgets.Text(value="" if value is None else str(value), **common)  # str, optional, learning rate


class PanelCallback:
    """transformers callback that draws the loss plot and progress into the panel after every log."""

    def __new__(cls, panel):
        from transformers import TrainerCallback

        class _Callback(TrainerCallback):
            replaces_progress = True  # kit.train.run detaches transformers' own progress display

            def on_step_end(self, args, state, control, **kwargs):
                panel.progress.max = max(state.max_steps, 1)
                panel.progress.value = state.global_step

            def on_log(self, args, state, control, logs=None, **kwargs):
                from kit.train import monitor

                panel.history = list(state.log_history)
                fig = monitor.plot_loss(state.log_history, title=panel._title, lang=panel.lang)
                panel.plot.value = monitor.figure_png(fig)
                panel.plot.layout.display = None
                last = state.log_history[-1] if state.log_history else {}
                if "loss" in last:
                    panel.status.value = (f"{html.escape(text('running', panel.lang))} {text('step', panel.lang)} "
                                          f"{state.global_step}/{state.max_steps}, loss {last['loss']:.4f}")

        return _Callback()


class TrainPanel(widgets.VBox):
    """The training panel. `widgets` maps each TrainConfig field name to its control, `rows` to the
    control with its help line (`help_lines` to that line)."""

    def __init__(self, config: TrainConfig | None = None, lang: str = "English"):
        config = config or TrainConfig()
        self.lang = LANGS[lang]
        self.extra = dict(config.extra)
        self.fields = TrainConfig.field_map()
        hints = typing.get_type_hints(TrainConfig)
        self.widgets = {name: make_widget(f, hints[name], getattr(config, name), self.lang)
                        for name, f in self.fields.items()}
        self.rows = {name: with_help(w, board.field_help(self.fields[name], self.lang), width="430px")
                     for name, w in self.widgets.items()}
        self.help_lines = {name: row.children[1] for name, row in self.rows.items()}
        self._fill_dataset_names()
        self.widgets["dataset_dir"].observe(lambda _: self._fill_dataset_names(), names="value")
        self.widgets["stage"].observe(lambda _: self._fill_dataset_names(), names="value")
        self.result = None
        self.error = None
        self.history: list = []
        self.thread: threading.Thread | None = None
        self.abort_flag = threading.Event()
        self.last_output_dir: str | None = None  # the folder of this panel's last start
        self.callbacks: list = []  # extra transformers TrainerCallbacks for the next starts
        self._title = "training loss"

        # presets, data preview
        self.preset = widgets.Dropdown(options=[("—", "")] + [(n, n) for n in board.PRESETS], value="",
                                       style={"description_width": "170px"}, layout=widgets.Layout(width="430px"))
        self.preset.observe(lambda change: change["new"] and self.apply_preset(change["new"]), names="value")
        self.preset_row = with_help(self.preset, "", width="430px")
        self.data_button = widgets.Button(icon="table")
        self.data_box = widgets.VBox()
        self.data_button.on_click(lambda _: self.preview_dataset())
        # output area: a titled, read-only command preview
        self.preview_title = widgets.HTML()
        self.preview_area = widgets.Textarea(layout=widgets.Layout(width="100%", height="160px"), disabled=True)
        self.args_path = widgets.Text(layout=widgets.Layout(width="430px"), style={"description_width": "170px"})
        self.resume = widgets.Checkbox(value=False, indent=False)
        self.args_row = with_help(self.args_path, "", width="430px")
        self.resume_row = with_help(self.resume, "", width="430px")
        self.buttons = {key: widgets.Button(button_style=style, layout=widgets.Layout(width="auto"))
                        for key, style in
                        [("preview", ""), ("save", ""), ("load", ""), ("start", "primary"),
                         ("abort", "danger")]}
        self.buttons["preview"].on_click(lambda _: self.preview_command())
        self.buttons["save"].on_click(lambda _: self.save_args())
        self.buttons["load"].on_click(lambda _: self.load_args())
        self.buttons["start"].on_click(lambda _: self.start())
        self.buttons["abort"].on_click(lambda _: self.abort())
        self.status = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=1)
        # hidden until the first plot: an Image without data shows a broken-image icon
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="600px", display="none"))
        self.language = widgets.Dropdown(options=list(LANGS), value=lang, style={"description_width": "170px"},
                                         layout=widgets.Layout(width="430px"))
        self.language_row = with_help(self.language, "", width="430px")
        self.language.observe(lambda change: self.set_language(change["new"]), names="value")

        placed = set(GENERAL).union(*GROUPS.values())
        self.groups = {key: widgets.VBox([self.rows[n] for n in names]) for key, names in GROUPS.items()}
        self.groups["data"].children += (self.data_button, self.data_box)
        self.groups["other"] = widgets.VBox([self.rows[n] for n in self.fields if n not in placed])
        self.general = widgets.VBox([self.language_row, self.preset_row, *[self.rows[n] for n in GENERAL]])
        self.sections = widgets.Accordion(children=list(self.groups.values()), selected_index=0)
        self.tabs = widgets.Tab(children=[self.general, self.sections])
        self.actions = widgets.HBox([self.buttons[k] for k in ("preview", "save", "load", "start", "abort")])
        self.run_box = widgets.VBox([widgets.HBox([self.args_row, self.resume_row],
                                                  layout=widgets.Layout(flex_flow="row wrap")),
                                     self.actions, self.status,
                                     self.progress, self.plot, self.preview_title, self.preview_area])
        super().__init__([self.tabs, self.run_box])
        self.set_language(lang)

    # ------------------------------------------------------------------------- config <-> widgets
    def values(self) -> dict:
        return {name: from_choice(w.value) if None in self.fields[name].metadata.get("choices", ()) else w.value
                for name, w in self.widgets.items()}

    def config(self) -> TrainConfig:
        """The TrainConfig the widgets describe (values converted by TrainConfig.from_dict; raises
        ConfigError naming the field for a value that is not a number where one is needed). An empty
        Output dir becomes a new folder (kit.train.board.default_output_dir)."""
        values = self.values()
        if not values["output_dir"]:
            values["output_dir"] = self.default_output_dir(values)
        return TrainConfig.from_dict({**values, "extra": dict(self.extra)}, source="training panel",
                                     warn=False)

    @staticmethod
    def default_output_dir(values: dict) -> str:
        """LLaMA-Factory's UI naming: saves/<model>/<method>/train_<date-time>, under kit's work dir."""
        return board.default_output_dir(values["model_name_or_path"], values["finetuning_type"])

    def set_config(self, config: TrainConfig) -> None:
        self.extra = dict(config.extra)
        for name, w in self.widgets.items():
            value = getattr(config, name)
            if None in self.fields[name].metadata.get("choices", ()):
                w.value = to_choice(value)
            else:
                w.value = ("" if value is None else str(value)) if isinstance(w, widgets.Text) else value

    def apply_preset(self, name: str) -> None:
        """Fill the fields a quick preset sets (kit.train.board.PRESETS)."""
        try:
            values = board.preset_values(name)
        except ConfigError as err:
            self._error(err)
            return
        current = self.values()
        current.update(values)
        current["output_dir"] = self.widgets["output_dir"].value or ""
        self.set_config(TrainConfig.from_dict({**current, "output_dir": current["output_dir"],
                                               "extra": dict(self.extra)}, warn=False))
        self.status.value = f"{html.escape(text('preset_applied', self.lang))}: {html.escape(name)}"

    def _fill_dataset_names(self) -> None:
        """The dataset picker lists the registered names (of the chosen stage) of dataset_dir."""
        try:
            names = board.dataset_names(self.widgets["dataset_dir"].value or "data",
                                        stage=self.widgets["stage"].value)
        except (OSError, ValueError):
            names = []
        for key in ("dataset", "eval_dataset"):
            self.widgets[key].options = tuple(names)

    # ------------------------------------------------------------------------- language
    def set_language(self, lang: str) -> None:
        """Switch every label, help line, button and title between English and Chinese."""
        self.lang = LANGS[lang]
        if self.language.value != lang:
            self.language.value = lang
        for name, w in self.widgets.items():
            w.description = field_label(self.fields[name], self.lang)
            set_help(self.rows[name], board.field_help(self.fields[name], self.lang))
        for key, button in self.buttons.items():
            button.description = text(key, self.lang)
        self.data_button.description = text("preview_data", self.lang)
        self.language.description = text("lang", self.lang)
        self.preset.description = text("preset", self.lang)
        self.args_path.description = text("args_path", self.lang)
        self.resume.description = text("resume", self.lang)
        set_help(self.language_row, text("lang_help", self.lang))
        set_help(self.preset_row, text("preset_help", self.lang))
        set_help(self.args_row, text("args_help", self.lang))
        set_help(self.resume_row, text("resume_help", self.lang))
        self.preview_title.value = f"<b>{html.escape(text('preview_title', self.lang))}</b>"
        self.preview_area.placeholder = text("preview_hint", self.lang)
        self.preset.options = [("—", "")] + [(board.PRESET_LABELS_ZH[n] if self.lang else n, n) for n in board.PRESETS]
        for index, key in enumerate(self.groups):
            self.sections.set_title(index, text(key, self.lang))
        self.tabs.set_title(0, text("general", self.lang))
        self.tabs.set_title(1, text("train_tab", self.lang))
        if self.data_box.children and hasattr(self.data_box.children[0], "set_language"):
            self.data_box.children[0].set_language(self.lang)

    def _label(self, name: str) -> str:
        return field_label(self.fields[name], self.lang)

    # ------------------------------------------------------------------------- buttons
    def _error(self, err: Exception | str) -> None:
        self.error = err
        self.status.value = (f"<span style='color:#c00'>{html.escape(text('error', self.lang))}: "
                             f"{html.escape(str(err))}</span>")

    def preview_command(self) -> str:
        """The llamafactory-cli command and YAML for the current settings (into the text area)."""
        try:
            config = self.config()
        except ConfigError as err:
            self._error(err)
            return ""
        try:
            lf_yaml = config.to_llamafactory_yaml()
        except ConfigError as err:  # a run LLaMA-Factory cannot do (stage grpo): say why
            lf_yaml = f"# {err}\n"
        self.preview_area.value = (config.command_preview() + "\n\n# --- as a YAML file "
                                   "(llamafactory-cli train FILE.yaml) ---\n" + lf_yaml)
        return self.preview_area.value

    def _path(self) -> Path:
        if self.args_path.value.strip():
            return Path(self.args_path.value.strip()).expanduser()
        from kit import env

        return env.work_dir() / "configs" / "train_args.yaml"

    def save_args(self) -> Path | None:
        """Write the settings as our YAML to the path box (default work_dir()/configs/train_args.yaml)."""
        try:
            path = self._path()
            self.config().to_yaml(path)
        except (ConfigError, OSError) as err:
            self._error(err)
            return None
        self.status.value = f"{html.escape(text('saved', self.lang))} {html.escape(str(path))}"
        return path

    def load_args(self) -> TrainConfig | None:
        """Read a YAML (ours or LLaMA-Factory's) from the path box into the widgets; unused keys are
        listed in the status line and kept for saving / preview."""
        import warnings

        try:
            path = self._path()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config = TrainConfig.from_yaml(path)
        except (ConfigError, OSError) as err:
            self._error(err)
            return None
        self.set_config(config)
        message = f"{html.escape(text('loaded', self.lang))} {html.escape(str(path))}"
        if config.unknown_keys:
            message += f"; {html.escape(text('unused', self.lang))}: {html.escape(', '.join(config.unknown_keys))}"
        self.status.value = message
        return config

    def preview_dataset(self, page_size: int = 3):
        """Show the first dataset's canonical rows (kit.data) in a paged previewer (kit.ui.data)."""
        from kit import data
        from kit.train.runner import resolve_dataset_dir
        from kit.ui.data import PreviewPanel

        try:
            config = self.config()
            if not config.dataset:
                raise ConfigError("field 'dataset' = None is not allowed: expected a name from dataset_info.json")
            rows = data.load_dataset(config.dataset, dataset_dir=resolve_dataset_dir(config.dataset_dir),
                                     stage=config.stage, max_samples=config.max_samples, verbose=False)
        except (ConfigError, data.DataError, OSError, ValueError) as err:
            self._error(err)
            return None
        panel = PreviewPanel(rows, page_size=page_size, lang=self.lang)
        self.data_box.children = (panel,)
        return panel

    def run_config(self) -> TrainConfig:
        """The config a start would train, after the panel's own checks: an empty Output dir is a new
        folder (or, with resume ticked, this panel's last run); a folder that holds a run without
        overwrite / resume ticked, or resume without a checkpoint, is an error that names the panel's
        controls (not code arguments)."""
        values_dir = self.widgets["output_dir"].value.strip()
        config = self.config()
        if not values_dir and self.resume.value and self.last_output_dir:
            config = dataclasses.replace(config, output_dir=self.last_output_dir)
        config.validate()
        problem = board.output_dir_problem(config.output_dir, config.overwrite_output_dir, self.resume.value)
        if problem:
            raise ConfigError(text("busy_dir" if problem == "busy" else "no_checkpoint", self.lang).format(
                path=config.output_dir, overwrite=self._label("overwrite_output_dir"),
                resume=text("resume", self.lang), output=self._label("output_dir")))
        return config

    def start(self, background: bool = True):
        """Validate and train with kit.train.run (in a thread unless background=False); the loss plot
        and progress bar update after every log. Returns the thread, or the TrainResult inline.
        Output dir is left as the learner set it (empty = a new folder per start); the folder used
        is in the status line and in `last_output_dir`."""
        if self.thread is not None and self.thread.is_alive():
            self.status.value = html.escape(text("busy", self.lang))
            return self.thread
        try:
            config = self.run_config()
        except ConfigError as err:
            self._error(err)
            return None
        self.last_output_dir = config.output_dir
        self.result, self.error, self.history = None, None, []
        self.abort_flag = threading.Event()
        self._title = f"{config.stage} / {config.finetuning_type}"
        self.progress.value = 0
        self.status.value = f"{html.escape(text('running', self.lang))} → {html.escape(config.output_dir)}"
        resume = self.resume.value

        def work():
            from kit.train import run

            try:
                self.result = run(config, abort=self.abort_flag, callbacks=[PanelCallback(self), *self.callbacks],
                                  live_plot=False, resume=resume, overwrite_output_dir=config.overwrite_output_dir)
            except Exception as err:  # shown in the panel; the thread must not die silently
                self._error(err)
                return
            key = "stopped" if self.result.interrupted else "done"
            self.status.value = f"{html.escape(text(key, self.lang))}: {html.escape(str(self.result))}"

        if not background:
            work()
            return self.result
        self.thread = threading.Thread(target=work, name="kit-train-panel", daemon=True)
        self.thread.start()
        return self.thread

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def abort(self) -> None:
        """Ask the running training to stop after the current step (a checkpoint is saved); says
        so only when something runs."""
        if not self.running:
            self.status.value = html.escape(text("idle", self.lang))
            return
        self.abort_flag.set()
        self.status.value = html.escape(text("aborting", self.lang))

    def wait(self, timeout: float | None = None):
        """Block until a background run ends; returns the TrainResult (None on error)."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.result


def train_panel(config: TrainConfig | None = None, lang: str = "English") -> TrainPanel:
    return TrainPanel(config, lang=lang)
