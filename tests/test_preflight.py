"""Checks before any weights load (issue 17): a template whose markers the tokenizer lacks as single
tokens is refused (unless force_template), wrong lora_target / freeze_trainable_layers are found
from the architecture alone, and prompt truncation is counted and reported once (one printed line)."""
import pytest

from kit import env, models
from kit.train import ConfigError, TrainConfig, checks, run


def config(tmp_path, **changes) -> TrainConfig:
    settings = dict(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=64, max_samples=4,
                    max_steps=1, report_to="none", output_dir=str(tmp_path / "run"))
    return TrainConfig(**{**settings, **changes})


def test_llama3_on_the_builtin_model_is_refused_before_loading_weights(tmp_path, monkeypatch):
    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(models, "load", no_weights)
    with pytest.raises(ConfigError, match=r"template.*'llama3'.*<\|eot_id\|>' is 8 tokens.*smollm2"):
        run(config(tmp_path, template="llama3"))


def test_the_builtin_template_fits_and_force_template_accepts_a_misfit(tokenizer, tmp_path):
    assert checks.check_template_fit(config(tmp_path), tokenizer) == []
    forced = checks.check_template_fit(config(tmp_path, template="llama3", force_template=True), tokenizer)
    assert "'<|eot_id|>' is 8 tokens" in forced


@pytest.mark.parametrize("changes, words", [
    (dict(lora_target="q_proj,v_prj"), "'v_prj' is not a module of this model"),
    (dict(lora_target="self_attn"), "'self_attn' is not a layer LoRA can adapt"),
    (dict(finetuning_type="freeze", freeze_trainable_layers=99), "has 30 layers"),
    (dict(finetuning_type="freeze", freeze_trainable_layers=-31), "has 30 layers"),
])
def test_wrong_targets_are_found_before_the_model_loads(tmp_path, monkeypatch, changes, words):
    monkeypatch.setattr(models, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("weights loaded")))
    with pytest.raises(ConfigError, match=words):
        run(config(tmp_path, **changes))


def test_good_targets_pass(tmp_path):
    checks.check_method_targets(config(tmp_path, lora_target="q_proj,self_attn.v_proj,embed_tokens"))
    checks.check_method_targets(config(tmp_path, finetuning_type="freeze", freeze_trainable_layers=-30))


def test_truncation_is_counted_and_reported_once(tokenizer, capsys):
    from kit import templates
    from kit.train import sft

    long_row = {"messages": [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok " * 30}]}
    short_row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    full = len(templates.encode(models.BUILTIN_TEMPLATE, tokenizer, long_row["messages"], cutoff_len=10**9)[0])
    cfg = TrainConfig(dataset="identity", cutoff_len=48)
    features = sft.encode_rows([long_row, short_row, long_row], tokenizer, templates.get(models.BUILTIN_TEMPLATE), cfg)
    reports = [line for line in capsys.readouterr().out.splitlines() if "cutoff_len=48 cut" in line]
    assert len(reports) == 1  # once per pass, not once per row
    assert f"cut 2 of 3 row(s), {2 * (full - 48)} token(s) lost" in reports[0]
    assert [len(ids) for ids in features["input_ids"]] == [48, len(features["input_ids"][1]), 48]


def test_truncated_adapter_files_are_named(tmp_path):
    import json
    import struct

    from kit import export
    from kit.train import checkpoints

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m-instruct",
                                                             "peft_type": "LORA"})[:30])  # cut short
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (adapter / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 7)
    problems = checkpoints.adapter_problems(adapter)
    assert any("adapter_config.json is not valid JSON" in p and str(adapter) in p for p in problems)
    assert any("adapter_model.safetensors" in p and "cut short" in p for p in problems)
    with pytest.raises(export.ExportError, match=r"damaged: .*adapter_config.json is not valid JSON"):
        export.merge_and_save(adapter, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"adapter_name_or_path.*adapter_model.safetensors.*cut short"):
        checks.check_adapters(config(tmp_path, adapter_name_or_path=str(adapter)))
