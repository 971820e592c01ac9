"""Allowed values live once, in field metadata (kit.settings): validate(), the widgets and the panel's
pure functions all read them. The pure side is tested without widgets."""
from dataclasses import fields

import pytest

from kit import settings
from kit.chat import SamplingParams
from kit.memory import MemorySettings, estimate, rules


def field(cls, name):
    return {f.name: f for f in fields(cls)}[name]


@pytest.mark.parametrize("name, good, bad", [
    ("quantization_bit", [None, 8, 4], [3, 16, "4"]),
    ("optimizer", ["adamw_torch", "adamw_8bit"], ["sgd", None]),
    ("attn_implementation", ["sdpa", "eager", "flash_attention_2"], ["flash", ""]),
    ("dtype", ["bfloat16", "float16", "float32", "bf16"], ["int8", "float64"]),
    ("batch_size", [1, 64], [0, -1, 1.5, True]),
    ("max_new_tokens", [0, 10], [-1]),
])
def test_memory_settings_rules_come_from_metadata(name, good, bad):
    f = field(MemorySettings, name)
    for value in good:
        assert settings.is_allowed(f, value)
        MemorySettings(**{name: value}).validate()
    for value in bad:
        assert not settings.is_allowed(f, value)
        with pytest.raises(ValueError, match=rf"MemorySettings\.{name}=.*expected {settings.allowed_text(f)}"):
            MemorySettings(**{name: value}).validate()


@pytest.mark.parametrize("name, good, bad", [
    ("temperature", [0.01, 2.0], [0, 0.0, 2.01]),
    ("top_p", [0.05, 1.0], [0, 1.01]),
    ("top_k", [0, 50], [-1, 2.5]),
    ("max_new_tokens", [1], [0]),
    ("repetition_penalty", [0.5, 1.3], [0.0]),
])
def test_sampling_rules_come_from_metadata(name, good, bad):
    for value in good:
        SamplingParams(**{name: value}).validate()
    for value in bad:
        with pytest.raises(ValueError, match=rf"SamplingParams\.{name}="):
            SamplingParams(**{name: value}).validate()


def test_slider_ranges_lie_inside_the_allowed_values():
    for f in fields(SamplingParams):
        if "slider" in f.metadata:
            low, high, _ = f.metadata["slider"]
            assert settings.is_allowed(f, low) and settings.is_allowed(f, high), f.name


def test_allowed_text_words():
    assert settings.allowed_text(field(MemorySettings, "quantization_bit")) == "one of None, 8, 4"
    assert settings.allowed_text(field(MemorySettings, "seq_len")) == "an integer >= 1"
    assert settings.allowed_text(field(SamplingParams, "top_p")) == "a number in (0.0, 1.0]"


def test_settings_for_is_the_panel_rule():
    values = {f.name: f.default for f in fields(MemorySettings)} | {"quantization_bit": 4, "max_new_tokens": 64}
    assert rules.settings_for("inference", values)["max_new_tokens"] == 64
    qlora = rules.settings_for("qlora", values)
    assert "max_new_tokens" not in qlora and qlora["quantization_bit"] == 4
    full = rules.settings_for("full", values | {"quantization_bit": None})
    assert "quantization_bit" not in full and "max_new_tokens" not in full
    with pytest.raises(ValueError, match="quantization"):
        rules.settings_for("full", values)  # 4-bit weights cannot be fully fine-tuned: an error, not a silent reset
    assert values["quantization_bit"] == 4  # the input is not changed
    estimate("Qwen2.5-0.5B", "full", **full)  # what it returns is accepted by the estimate


def test_memory_panel_settings_and_dropdowns_read_the_pure_side():
    pytest.importorskip("ipywidgets")
    from kit.ui.memory import MemoryPanel

    panel = MemoryPanel("Qwen2.5-0.5B", "qlora", 24.0, seq_len=256)
    assert list(panel.controls["optimizer"].options) == list(settings.choices(field(MemorySettings, "optimizer")))
    assert panel.settings() == rules.settings_for("qlora", panel.values())
    panel.method.value = "full"
    assert "quantization_bit" not in panel.settings() and "max_new_tokens" not in panel.settings()
