"""Where the labels people read live: Breakdown's components on their fields, the panels' own strings
in kit/ui/text.json (English and Chinese), and one reading of a TrainConfig for the calculator."""
import json
import re

import pytest

from kit import env
from kit.memory import COMPONENTS, Breakdown, estimate, from_train_config, rules
from kit.train import board
from kit.train.config import TrainConfig

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_component_has_an_english_and_a_chinese_label():
    for component in COMPONENTS:
        english, chinese = Breakdown.label(component, 0), Breakdown.label(component, 1)
        assert english and "_" not in english, component
        assert CJK.search(chinese) or chinese == english, component
    assert Breakdown.label("logits_loss", 1) == "logits 与损失"
    with pytest.raises(KeyError):
        Breakdown.label("no_such_component")


def test_comparison_headers_come_from_the_component_labels():
    headers = [rules.column_header(c, 1) for c in rules.COLUMNS]
    assert headers[:3] == ["方法", "合计 (GiB)", "可训练参数"]
    assert headers[3:] == [f"{Breakdown.label(c, 1)} (GiB)" for c in rules.COLUMNS[3:]]


def test_panel_strings_are_pairs_of_english_and_chinese():
    text = json.loads((env.repo_root() / "kit" / "ui" / "text.json").read_text(encoding="utf-8"))
    assert set(text) == {"chat", "data", "memory", "studio", "train"}
    for panel, strings in text.items():
        for key, pair in strings.items():
            assert isinstance(pair, list) and len(pair) == 2 and all(pair), f"{panel}.{key}: {pair!r}"
            # a placeholder such as {total:.2f} must be in both languages
            assert set(re.findall(r"{\w+", pair[0])) == set(re.findall(r"{\w+", pair[1])), f"{panel}.{key}"
    translated = [p[1] for s in text.values() for p in s.values() if CJK.search(p[1])]
    assert len(translated) >= 0.9 * sum(len(s) for s in text.values())


def test_the_panel_and_the_calculator_read_a_train_config_the_same_way():
    config = board.apply_preset(TrainConfig(), "Colab T4")
    model, method, settings = rules.from_train_config(config)
    assert (model, method) == ("SmolLM2-135M", "qlora")
    assert estimate(model, method, **settings).allocated == from_train_config(config).allocated
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rules.from_train_config(TrainConfig(model_name_or_path="/no/such/model/folder"))


def test_the_stacked_bar_labels_every_component_including_ddp_buckets():
    pytest.importorskip("ipywidgets")
    from kit.ui.memory import breakdown_figure

    two = estimate("Qwen2.5-0.5B", "full", num_gpus=2, sharding="ddp")
    assert two.comm_buffers > 0
    fig = breakdown_figure([two], lang=1)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert Breakdown.label("comm_buffers", 1) in legend and "权重" in legend
