"""The studio and the panel defects of issue 18, tested without a browser: pure rules first
(kit.train.board, kit.memory.rules), then the widgets driven by setting `.value`."""
import html
from dataclasses import fields
from pathlib import Path

import pytest

from kit.memory import MemorySettings, compare, rules
from kit.train import TrainConfig, board
from kit.train.config import ConfigError


# ------------------------------------------------------------------------ pure rules: training board

def test_presets_fill_valid_settings_and_unknown_names_are_refused():
    assert set(board.PRESETS) == {"tiny run on CPU", "Colab T4", "A100 80GB"}
    known = TrainConfig.field_map()
    for name in board.PRESETS:
        values = board.preset_values(name)
        assert set(values) <= set(known), name
        config = board.apply_preset(TrainConfig(dataset="identity", output_dir="x"), name).validate()
        assert all(getattr(config, k) == v for k, v in values.items())
    tiny = board.apply_preset(TrainConfig(), "tiny run on CPU")
    assert tiny.max_steps <= 30 and tiny.dataset == "identity" and not (tiny.bf16 or tiny.fp16)
    assert board.apply_preset(TrainConfig(), "Colab T4").quantization_bit == 4  # a T4 has 16 GB and no bf16
    assert board.apply_preset(TrainConfig(), "A100 80GB").bf16
    with pytest.raises(ConfigError, match="tiny run on CPU"):
        board.preset_values("tiny")


def test_default_output_dir_never_reuses_a_folder(tmp_path):
    first = board.default_output_dir("smollm2-135m-instruct", "lora", root=tmp_path, now=0)
    assert Path(first).relative_to(tmp_path).parts[:3] == ("saves", "smollm2-135m-instruct", "lora")
    Path(first).mkdir(parents=True)
    second = board.default_output_dir("smollm2-135m-instruct", "lora", root=tmp_path, now=0)
    assert second != first and second.endswith("-2")


def test_output_dir_problem(tmp_path):
    assert board.output_dir_problem(tmp_path / "new", overwrite=False, resume=False) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trainer_log.jsonl").write_text("{}\n")
    assert board.output_dir_problem(tmp_path / "run", overwrite=False, resume=False) == "busy"
    assert board.output_dir_problem(tmp_path / "run", overwrite=True, resume=False) is None
    assert board.output_dir_problem(tmp_path / "run", overwrite=False, resume=True) == "no_checkpoint"
    (tmp_path / "run" / "checkpoint-2").mkdir()
    assert board.output_dir_problem(tmp_path / "run", overwrite=False, resume=True) is None


def test_dataset_names_follow_the_registry_and_the_stage():
    names = board.dataset_names()
    assert {"identity", "alpaca_en_demo", "dpo_en_demo"} <= set(names)
    assert "dpo_en_demo" in board.dataset_names(stage="dpo") and "identity" not in board.dataset_names(stage="dpo")
    assert "dpo_en_demo" not in board.dataset_names(stage="sft")


def test_every_setting_has_chinese_help():
    for f in TrainConfig.setting_fields():
        assert f.metadata.get("help_zh"), f.name
        assert board.field_help(f, 1) == f.metadata["help_zh"] and board.field_help(f, 0) == f.metadata["help"]
    for f in fields(MemorySettings):
        assert f.metadata.get("help_zh") and f.metadata.get("label_zh"), f.name


# ------------------------------------------------------------------------ pure rules: calculator

def test_settings_apply_only_to_their_methods():
    assert "lora_rank" in rules.applicable("lora") and "lora_rank" not in rules.applicable("full")
    assert "max_new_tokens" in rules.applicable("inference") and "optimizer" not in rules.applicable("inference")
    assert "pure_bf16" in rules.applicable("full") and "pure_bf16" not in rules.applicable("qlora")
    values = {f.name: f.default for f in fields(MemorySettings)}
    assert set(rules.settings_for("full", values)) == rules.applicable("full")


def test_qlora_without_bits_and_quantized_full_are_explained():
    values = {f.name: f.default for f in fields(MemorySettings)}
    with pytest.raises(ValueError, match="qlora.*4 or 8.*'lora'"):
        rules.settings_for("qlora", {**values, "quantization_bit": None})
    with pytest.raises(ValueError, match="quantization to 'none'"):
        rules.settings_for("full", {**values, "quantization_bit": 4})
    assert rules.adjust_for_method("qlora", {"quantization_bit": None})["quantization_bit"] == 4
    assert rules.adjust_for_method("full", {"quantization_bit": 4})["quantization_bit"] is None


def test_readable_table_and_counts():
    assert rules.human_count(7615616512) == "7.62 B" and rules.human_count(4399104) == "4.40 M"
    assert rules.human_count(950) == "950"
    headers, cells = rules.readable_table(compare.compare_methods("Qwen2.5-7B", seq_len=512))
    assert headers[1] == "total (GiB)" and "trainable parameters" in headers and "_" not in "".join(headers)
    assert cells[0][0] == "full (AMP)" and cells[0][2].endswith(" B") and cells[3][2].endswith(" M")
    assert rules.readable_table([], lang=1)[0][1] == "合计 (GiB)"
    assert rules.largest_text(4096, "batch_size").startswith("≥ 4096") and rules.largest_text(12, "batch_size") == "12"
    assert rules.largest_text(0, "seq_len") == "none fits"


def test_memory_of_a_training_config():
    model, method, settings = rules.from_train_config(board.apply_preset(TrainConfig(), "Colab T4"))
    assert (model, method, settings["quantization_bit"], settings["seq_len"]) == ("SmolLM2-135M", "qlora", 4, 1024)
    assert settings["gradient_checkpointing"] is True and settings["dtype"] == "float16"


# ------------------------------------------------------------------------ training panel

@pytest.fixture
def panel():
    from kit.ui.train import TrainPanel

    return TrainPanel()


def test_help_is_visible_in_both_languages(panel):
    from kit.ui.memory import MemoryPanel

    for name, f in panel.fields.items():
        assert html.escape(f.metadata["help"]) in panel.help_lines[name].value, name
    panel.language.value = "中文"
    for name, f in panel.fields.items():
        assert html.escape(f.metadata["help_zh"]) in panel.help_lines[name].value, name
        assert panel.widgets[name].description == f.metadata["label_zh"]
    calc = MemoryPanel("SmolLM2-135M", "lora", lang="中文")
    for name, box in calc.boxes.items():
        assert html.escape(calc.fields[name].metadata["help_zh"]) in box.children[1].value, name
    for box in calc.top.values():
        assert "kit-help" in box.children[1].value and box.children[0].description_tooltip not in ("", None, "null")
    calc.language.value = "English"
    assert "sequences per step" in calc.boxes["batch_size"].children[1].value


def test_quantization_shows_none_and_the_dataset_picker_lists_the_registry(panel):
    w = panel.widgets["quantization_bit"]
    assert w.label == "none" and panel.config().quantization_bit is None
    w.value = 4
    assert panel.config().quantization_bit == 4
    assert {"identity", "alpaca_en_demo"} <= set(panel.widgets["dataset"].options)
    panel.widgets["stage"].value = "dpo"
    assert "dpo_en_demo" in panel.widgets["dataset"].options
    panel.preset.value = "tiny run on CPU"
    assert panel.config().max_steps == board.PRESETS["tiny run on CPU"]["max_steps"]


def test_two_starts_with_defaults_get_two_folders(panel, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_WORK_DIR", str(tmp_path))
    panel.widgets["dataset"].value = "identity"
    first = panel.run_config()
    Path(first.output_dir).mkdir(parents=True)
    (Path(first.output_dir) / "trainer_log.jsonl").write_text("{}\n")  # the first run wrote here
    second = panel.run_config()
    assert second.output_dir != first.output_dir and panel.widgets["output_dir"].value == ""


def test_a_busy_folder_names_the_panel_controls(panel, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "trainer_log.jsonl").write_text("{}\n")
    panel.widgets["dataset"].value = "identity"
    panel.widgets["output_dir"].value = str(run)
    assert panel.start() is None
    status = html.unescape(panel.status.value)
    assert "'Overwrite output dir'" in status and "'Resume from last checkpoint'" in status and "'Output dir'" in status
    assert "overwrite_output_dir=True" not in status and "resume=True" not in status
    panel.resume.value = True
    panel.start()
    assert "no checkpoint-N" in panel.status.value
    panel.language.value = "中文"
    panel.resume.value = False
    panel.start()
    assert "覆盖输出目录" in panel.status.value and "从断点继续" in panel.status.value


def test_abort_when_nothing_runs_says_so(panel):
    panel.abort()
    assert "Nothing is running" in panel.status.value and "Stopping" not in panel.status.value
    assert not panel.abort_flag.is_set()


def test_no_broken_image_and_a_titled_preview(panel):
    assert panel.plot.layout.display == "none"  # no empty Image (broken-image icon) before a run
    assert "Command preview" in panel.preview_title.value and panel.preview_area.placeholder


def test_loss_plot_has_integer_steps_and_chinese_labels():
    from kit import plots
    from kit.train import monitor

    fig = monitor.plot_loss([{"step": s, "loss": 2.0 / s} for s in (1, 2, 3)])
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    zh = monitor.plot_loss([{"step": 1, "loss": 1.0}], lang=1)
    expected = "步数" if plots.cjk_font() else "step"
    assert zh.axes[0].get_xlabel() == expected


def test_previewer_counts_pages_from_one_in_both_languages():
    from kit.ui.data import PreviewPanel

    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(7)]
    p = PreviewPanel(rows, page_size=3, lang=1)
    assert (p.page.min, p.page.max, p.page.value) == (1, 3, 1)
    assert "第 1/3 页" in p.body.value and p.page.description == "页码"
    p.set_language(0)
    assert "page 1/3" in p.body.value


# ------------------------------------------------------------------------ calculator panel

def test_calculator_refuses_qlora_without_bits_and_clears_stale_answers():
    from kit.ui.memory import MemoryPanel

    p = MemoryPanel("Qwen2.5-7B", "qlora", budget_gib=24)
    assert p.controls["quantization_bit"].label == "4-bit" and p.result is not None and p.comparison_html.value
    p.controls["quantization_bit"].value = "none"
    assert p.result is None and "'lora'" in html.unescape(p.summary.value)
    assert p.comparison_html.value == "" and p.verdict_html.value == "" and not p.plot.outputs
    p.method.value = "lora"
    assert p.result is not None and "total (GiB)" in p.comparison_html.value and "7615616512" not in p.comparison_html.value
    assert p.controls["freeze_trainable_layers"].disabled and not p.controls["lora_rank"].disabled
    p.method.value = "full"
    assert p.controls["quantization_bit"].value == "none" and p.result.method == "full"
    assert p.grid.layout.grid_template_columns.startswith("repeat(auto-fill")  # wraps instead of cutting off


def test_budget_search_limit_is_not_presented_as_an_answer():
    from kit.ui.memory import MemoryPanel

    p = MemoryPanel("SmolLM2-135M", "lora", budget_gib=4000, seq_len=16)
    assert p.largest["batch_size"] == rules.SEARCH_LIMIT["batch_size"]
    assert "≥ 4096 (search limit)" in p.summary.value


# ------------------------------------------------------------------------ chat panel (a stand-in session)

class _Session:
    """Just what ChatPanel uses of a ChatSession: params, system, template, history, stream()."""

    def __init__(self):
        from kit.chat import SamplingParams

        self.params, self.system, self.template, self.history = SamplingParams(), None, None, []

    def stream(self, message):
        for piece in ("Hel", "lo", "!"):
            yield piece
        self.history += [{"role": "user", "content": message}, {"role": "assistant", "content": "Hello!"}]

    def clear(self):
        self.history = []


def test_chat_enter_sends_and_sliders_are_wide():
    from kit.ui.chat import ChatPanel

    panel = ChatPanel(_Session())
    panel.input.value = "hi"
    panel.input._handle_custom_msg({"event": "submit"}, [])  # what the browser sends on Enter
    assert panel.session.history[-1]["content"] == "Hello!" and panel.pieces == 3 and panel.input.value == ""
    assert all(int(c.layout.width.rstrip("px")) >= 400 for c in panel.params.values())
    assert "kit-help" in panel.param_rows["temperature"].children[1].value
    panel.set_language(1)
    assert panel.send_button.description == "发送"


# ------------------------------------------------------------------------ the studio

def test_studio_has_the_board_tabs_and_a_memory_estimate():
    from kit.ui import Studio

    studio = Studio(preset="tiny run on CPU")
    titles = [studio.tabs.get_title(i) for i in range(len(studio.tabs.children))]
    assert titles == ["General", "Train", "Evaluate & Predict", "Chat", "Export"]
    assert studio.memory is not None and "GiB" in studio.memory_html.value
    before = studio.memory.total
    studio.train.widgets["cutoff_len"].value = 1024
    assert studio.memory.total > before  # the estimate follows the settings
    studio.train.language.value = "中文"
    assert studio.tabs.get_title(2) == "评估与预测" and studio.eval_button.description == "开始评估"
    assert studio.export() is None and "适配器" in studio.export_status.value  # nothing trained yet


# ------------------------------------------------------------------------ a real run: resume then abort

def test_transformers_notebook_progress_fails_on_resume_then_abort_so_the_panel_detaches_it():
    """The sequence of a run resumed at step 3 and aborted after step 5 (max_steps 12) breaks
    transformers' NotebookProgressCallback; kit.train.run removes it when a panel draws progress."""
    from types import SimpleNamespace

    from transformers.trainer_callback import ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    from kit.train.runner import _detach_progress

    cb = NotebookProgressCallback()
    args = SimpleNamespace(eval_strategy="no")
    state = SimpleNamespace(max_steps=12, global_step=3, epoch=0.5, num_train_epochs=2)
    cb.on_train_begin(args, state, None)
    for step in (4, 5):
        state.global_step = step
        cb.on_step_end(args, state, None)
    with pytest.raises(TypeError, match="NoneType"):
        cb.on_train_end(args, state, None)
    removed = []
    _detach_progress(SimpleNamespace(remove_callback=removed.append))
    assert NotebookProgressCallback in removed and ProgressCallback in removed


@pytest.mark.slow
def test_resume_then_abort_ends_cleanly_with_the_notebook_progress_callback(tmp_path, monkeypatch):
    """In JupyterLab transformers attaches NotebookProgressCallback; a resumed run that is aborted
    used to end in `int / NoneType` inside it. The panel detaches it."""
    import transformers.trainer
    from transformers.utils.notebook import NotebookProgressCallback

    from kit.ui.train import TrainPanel

    monkeypatch.setattr(transformers.trainer, "DEFAULT_PROGRESS_CALLBACK", NotebookProgressCallback)
    panel = TrainPanel()
    panel.preset.value = "tiny run on CPU"
    for name, value in dict(max_samples="8", cutoff_len=48, max_steps=12, save_steps=100,
                            output_dir=str(tmp_path / "run")).items():
        panel.widgets[name].value = value

    from transformers import TrainerCallback

    class AbortAt(TrainerCallback):  # presses Abort during the step after `step`
        step = 0

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step >= self.step:
                panel.abort_flag.set()

    stopper = AbortAt()
    panel.callbacks = [stopper]
    stopper.step = 2
    first = panel.start(background=False)
    assert panel.error is None and first.interrupted and first.global_step == 3
    panel.resume.value = True
    stopper.step = 4  # abort in the second resumed step: the notebook tracker then divides by None
    second = panel.start(background=False)
    assert panel.error is None, panel.error
    assert second.interrupted and second.global_step == 5 and "Stopped early" in panel.status.value
    assert second.output_dir == first.output_dir


def test_course_run_includes_the_studio_after_the_lessons():
    from kit import course

    names = [p.name for p in course.notebooks()]
    assert names[-1] == "studio.ipynb" and names[:-1] == [p.name for p in course.lessons()]
