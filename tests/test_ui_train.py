"""The training panel (kit.ui.train) driven without a browser: setting widget values, clicking buttons."""
import html
import json
import time
from pathlib import Path

import pytest
import yaml

from kit.train import TrainConfig
from kit.ui.train import GENERAL, GROUPS, TEXT, TrainPanel


@pytest.fixture
def panel():
    return TrainPanel()


def test_every_setting_has_a_widget_with_default_and_help(panel):
    fields = TrainConfig.field_map()
    assert set(panel.widgets) == set(fields)
    defaults = TrainConfig()
    assert panel.config().to_dict() | {"output_dir": ""} == defaults.to_dict()  # only output_dir filled in
    for name, f in fields.items():
        widget = panel.widgets[name]
        assert widget.description == f.metadata["label"]
        assert widget.description_tooltip == f.metadata["help"]
        assert html.escape(f.metadata["help"]) in panel.help_lines[name].value  # visible, not only a tooltip
    general = {box.children[0].description for box in panel.general.children}
    assert {"Model", "Finetuning method", "Quantization bit", "Template", "Flash attention"} <= general
    assert all(name in panel.fields for name in GENERAL + sum(GROUPS.values(), []))


def test_changing_widgets_changes_the_config(panel):
    w = panel.widgets
    w["finetuning_type"].value = "freeze"
    w["freeze_trainable_layers"].value = 3
    w["learning_rate"].value = "2e-4"
    w["cutoff_len"].value = 96
    w["dataset"].value = "identity,alpaca_en_demo"
    w["use_dora"].value = True
    w["lr_scheduler_type"].value = "linear"
    w["max_samples"].value = "50"
    w["neftune_noise_alpha"].value = ""
    config = panel.config()
    assert (config.finetuning_type, config.freeze_trainable_layers, config.learning_rate) == ("freeze", 3, 2e-4)
    assert (config.cutoff_len, config.dataset, config.use_dora) == (96, "identity,alpaca_en_demo", True)
    assert (config.lr_scheduler_type, config.max_samples, config.neftune_noise_alpha) == ("linear", 50, None)
    w["finetuning_type"].value = "lora"
    w["quantization_bit"].value = 4
    assert panel.config().quantization_bit == 4


def test_preview_shows_llamafactory_command_and_yaml(panel):
    w = panel.widgets
    w["dataset"].value = "identity"
    w["lora_rank"].value = 16
    w["learning_rate"].value = "3e-4"
    w["output_dir"].value = "saves/panel"
    text = panel.preview_command()
    assert text == panel.preview_area.value
    assert text.startswith("llamafactory-cli train")
    assert "--lora_rank 16" in text and "--dataset identity" in text
    lf = yaml.safe_load(text.split("---\n", 1)[1])
    assert (lf["lora_rank"], lf["learning_rate"], lf["output_dir"]) == (16, 3e-4, "saves/panel")
    w["learning_rate"].value = "fast"
    panel.preview_command()
    assert "learning_rate" in panel.status.value and "fast" in panel.status.value  # an error, not a crash


def test_save_and_load_round_trip(panel, tmp_path):
    w = panel.widgets
    w["dataset"].value = "identity"
    w["lora_alpha"].value = "32"
    w["quantization_bit"].value = 4
    w["report_to"].value = "none"
    w["output_dir"].value = str(tmp_path / "out")
    panel.args_path.value = str(tmp_path / "args.yaml")
    path = panel.save_args()
    assert path == tmp_path / "args.yaml" and "args.yaml" in panel.status.value
    saved = panel.config()
    other = TrainPanel()
    other.args_path.value = str(path)
    loaded = other.load_args()
    assert loaded.to_dict() == saved.to_dict() == other.config().to_dict()
    assert other.widgets["lora_alpha"].value == "32" and other.widgets["quantization_bit"].value == 4

    lf = tmp_path / "lf.yaml"  # a LLaMA-Factory YAML: unused keys are listed and kept
    lf.write_text("dataset: alpaca_en_demo\nlora_rank: 4\nddp_timeout: 180000000\nray_num_workers: 2\n")
    other.args_path.value = str(lf)
    other.load_args()
    assert "ddp_timeout" in other.status.value and "ray_num_workers" in other.status.value
    assert other.widgets["lora_rank"].value == 4
    assert other.config().extra == {"ddp_timeout": 180000000, "ray_num_workers": 2}
    other.args_path.value = str(tmp_path / "missing.yaml")
    assert other.load_args() is None and "missing.yaml" in other.status.value


def test_language_switch_changes_labels(panel):
    assert panel.widgets["lora_rank"].description == "LoRA rank"
    assert panel.buttons["start"].description == "Start"
    panel.language.value = "中文"
    assert panel.widgets["lora_rank"].description == TrainConfig.field_map()["lora_rank"].metadata["label_zh"]
    assert panel.widgets["learning_rate"].description == "学习率"
    assert panel.buttons["start"].description == TEXT["start"][1]
    assert panel.tabs.get_title(1) == TEXT["train_tab"][1]
    panel.language.value = "English"
    assert panel.widgets["learning_rate"].description == "Learning rate"


def test_dataset_preview_uses_kit_data(panel):
    panel.widgets["dataset"].value = "identity"
    preview = panel.preview_dataset()
    assert preview is not None and panel.data_box.children == (preview,)
    assert "row 0" in preview.body.value
    panel.widgets["dataset"].value = "no_such_dataset"
    assert panel.preview_dataset() is None and "no_such_dataset" in panel.status.value


def test_start_refuses_bad_settings_with_a_message(panel, tmp_path):
    panel.widgets["dataset"].value = "identity"
    panel.widgets["output_dir"].value = str(tmp_path / "o")
    panel.widgets["lora_rank"].value = 0
    assert panel.start() is None
    assert "lora_rank" in panel.status.value and "[1, 4096]" in panel.status.value


@pytest.mark.slow
def test_start_trains_and_abort_stops_with_a_checkpoint(panel, tmp_path):
    w = panel.widgets
    for name, value in dict(dataset="alpaca_en_demo", max_samples="8", cutoff_len=64,
                            per_device_train_batch_size=1, gradient_accumulation_steps=1, max_steps=40,
                            logging_steps=1, save_steps=100, report_to="none", lora_rank=4,
                            output_dir=str(tmp_path / "panel_run")).items():
        w[name].value = value
    thread = panel.start()
    log = Path(tmp_path / "panel_run" / "trainer_log.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and thread.is_alive() and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.2)
    panel.abort()
    result = panel.wait(timeout=180)
    assert panel.error is None, panel.error
    assert result is not None and result.interrupted and 2 <= result.global_step < 40
    assert result.checkpoint and (Path(result.checkpoint) / "optimizer.pt").is_file()
    assert panel.plot.value[:4] == b"\x89PNG" and panel.progress.value == result.global_step
    assert "Stopped early" in panel.status.value

    # resume from the panel: tick resume, lower max_steps so it ends right after the checkpoint
    w["max_steps"].value = result.global_step + 1
    panel.resume.value = True
    done = panel.start(background=False)
    assert done.global_step == result.global_step + 1 and not done.interrupted
    state = json.loads((tmp_path / "panel_run" / "trainer_state.json").read_text())
    assert state["global_step"] == result.global_step + 1
