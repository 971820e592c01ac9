"""TrainConfig: LLaMA-Factory names, YAML in and out, validation, the stage registry (no training)."""
import dataclasses
from pathlib import Path

import pytest
import yaml

from kit.train import ConfigError, TrainConfig, get_stage, register_stage
from kit.train.config import BUILTIN_HUB_ID, PARTS
from kit.train.lf_defaults import default as lf_default

LF_LORA_SFT = (Path(__file__).parent / "fixtures" / "llama3_lora_sft.yaml").read_text()  # LLaMA-Factory's example


def test_reads_llamafactory_example_and_reports_unknown_keys(tmp_path):
    path = tmp_path / "llama3_lora_sft.yaml"
    path.write_text(LF_LORA_SFT)
    with pytest.warns(UserWarning, match="ddp_timeout"):
        config = TrainConfig.from_yaml(path)
    assert config.unknown_keys == ["overwrite_cache", "preprocessing_num_workers", "save_only_model", "ddp_timeout"]
    assert config.dataloader_num_workers == 4  # a kit setting: batches made in 4 worker processes
    assert config.extra["ddp_timeout"] == 180000000
    assert (config.lora_rank, config.learning_rate, config.warmup_ratio, config.bf16) == (8, 1e-4, 0.1, True)
    assert config.dataset == "identity,alpaca_en_demo" and config.template == "llama3"
    config.validate()
    # nothing lost: every key of the source file that differs from LLaMA-Factory's default comes back
    # out of to_llamafactory_yaml, and nothing else does
    source = yaml.safe_load(LF_LORA_SFT)
    out = yaml.safe_load(TrainConfig.from_yaml(path, defaults="llamafactory").to_llamafactory_yaml())
    assert out == {k: v for k, v in source.items() if v != lf_default(k)}


def test_galore_example_with_old_key_names():
    config = TrainConfig.from_dict({"finetuning_type": "full", "use_galore": True, "galore_layerwise": True,
                                    "galore_target": "mlp,self_attn", "galore_rank": 128, "warmup_steps": 0.1,
                                    "evaluation_strategy": "steps", "val_size": 0.1, "pure_bf16": True,
                                    "gradient_accumulation_steps": 1})
    assert config.eval_strategy == "steps" and config.galore_rank == 128 and config.unknown_keys == []


# config value(s) -> what the LLaMA-Factory YAML must hold, key by key
CASES = [
    (dict(finetuning_type="lora", lora_rank=16, lora_alpha=32, lora_dropout=0.05, lora_target="q_proj,v_proj"),
     dict(finetuning_type="lora", lora_rank=16, lora_alpha=32, lora_dropout=0.05, lora_target="q_proj,v_proj")),
    (dict(use_dora=True, use_rslora=True), dict(use_dora=True, use_rslora=True)),
    (dict(quantization_bit=4, quantization_type="nf4", double_quantization=False),
     dict(quantization_bit=4, quantization_type="nf4", double_quantization=False)),
    (dict(finetuning_type="freeze", freeze_trainable_layers=-3, freeze_trainable_modules="mlp",
          freeze_extra_modules="embed_tokens"),
     dict(finetuning_type="freeze", freeze_trainable_layers=-3, freeze_trainable_modules="mlp",
          freeze_extra_modules="embed_tokens")),
    (dict(finetuning_type="full", use_galore=True, galore_rank=32, galore_scale=0.25, galore_update_interval=50),
     dict(use_galore=True, galore_rank=32, galore_scale=0.25, galore_update_interval=50)),
    (dict(learning_rate=3e-5, num_train_epochs=2.0, max_steps=120, per_device_train_batch_size=4,
          gradient_accumulation_steps=16, lr_scheduler_type="linear", warmup_steps=10, max_grad_norm=0.5),
     dict(learning_rate=3e-5, num_train_epochs=2.0, max_steps=120, per_device_train_batch_size=4,
          gradient_accumulation_steps=16, lr_scheduler_type="linear", warmup_steps=10, max_grad_norm=0.5)),
    (dict(val_size=0.1, eval_strategy="steps", eval_steps=20, logging_steps=2, save_steps=40),
     dict(val_size=0.1, eval_strategy="steps", eval_steps=20, logging_steps=2, save_steps=40)),
    (dict(packing=True, neftune_noise_alpha=5.0, train_on_prompt=True, mask_history=True, cutoff_len=512),
     dict(packing=True, neftune_noise_alpha=5.0, train_on_prompt=True, mask_history=True, cutoff_len=512)),
    (dict(report_to="wandb", flash_attn="sdpa", disable_gradient_checkpointing=False, pure_bf16=True, seed=7),
     dict(report_to="wandb", flash_attn="sdpa", disable_gradient_checkpointing=False, pure_bf16=True, seed=7)),
    (dict(stage="dpo", pref_beta=0.2, pref_loss="sigmoid", dataset="dpo_en_demo"),
     dict(stage="dpo", pref_beta=0.2, pref_loss="sigmoid", dataset="dpo_en_demo")),
    (dict(model_name_or_path="smollm2-135m-instruct", template="smollm2"),
     dict(model_name_or_path=BUILTIN_HUB_ID, template="smollm2")),  # the built-in alias -> its hub id
    (dict(dataset=["identity", "alpaca_en_demo"]), dict(dataset="identity,alpaca_en_demo")),
]


@pytest.mark.parametrize("values, expected", CASES)
def test_llamafactory_yaml_keeps_every_value(values, expected):
    config = TrainConfig.from_dict({"output_dir": "saves/x", "dataset": "identity", **values})
    out = yaml.safe_load(config.to_llamafactory_yaml())
    for key, value in expected.items():
        if value == lf_default(key, config.stage):
            assert key not in out, key  # LLaMA-Factory's own default is not written
        else:
            assert out[key] == value, key
    # and every other setting is there exactly when it differs from LLaMA-Factory's default
    kit_only = {k for k, f in TrainConfig.field_map().items() if f.metadata.get("kit_only")}
    for key, value in config.to_dict().items():
        if key == "model_name_or_path" or key in kit_only:
            continue
        if key == "quantization_method" and config.quantization_bit:
            assert out[key] == "bnb"  # written with quantization_bit, in LLaMA-Factory's spelling
        elif value == lf_default(key, config.stage) or (key, value) in (("quantization_method", "bitsandbytes"),
                                                                         ("packing", None),
                                                                         ("disable_gradient_checkpointing", None)):
            assert key not in out, key
        else:
            assert out[key] == value, key
    assert set(out) <= set(TrainConfig.field_map()) - kit_only  # force_template is the kit's own


def test_yaml_round_trip_and_command_preview(tmp_path):
    config = TrainConfig.from_dict({"dataset": "identity", "output_dir": "o", "lora_rank": 4,
                                    "learning_rate": "5e-5", "ddp_timeout": 1}, warn=False)
    assert config.learning_rate == 5e-5  # PyYAML leaves 5e-5 a string; the field type converts it
    config.to_yaml(tmp_path / "c.yaml")
    with pytest.warns(UserWarning, match="ddp_timeout"):
        again = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert again == config and again.extra == {"ddp_timeout": 1}
    preview = config.command_preview()
    assert preview.startswith("llamafactory-cli train")
    assert "--lora_rank 4" in preview and "--dataset identity" in preview and "--ddp_timeout 1" in preview
    assert "--learning_rate" not in preview  # 5e-5 is LLaMA-Factory's default too
    assert config.command_preview("c.yaml") == "llamafactory-cli train c.yaml"


@pytest.mark.parametrize("values, field, text", [
    (dict(lora_rank=0), "lora_rank", "[1, 4096]"),
    (dict(lora_dropout=1.5), "lora_dropout", "0.999"),
    (dict(finetuning_type="qlora"), "finetuning_type", "'lora', 'freeze', 'full'"),
    (dict(quantization_bit=3), "quantization_bit", "None, 8, 4"),
    (dict(quantization_bit=4, finetuning_type="full"), "quantization_bit", "LoRA"),
    (dict(learning_rate=-1e-5), "learning_rate", "[0.0, 1.0]"),  # 0 is allowed: it measures the loss only
    (dict(report_to="comet"), "report_to", "tensorboard"),
    (dict(use_galore=True), "use_galore", "full/freeze"),
    (dict(bf16=True, fp16=True), "fp16", "at most one"),
    (dict(dataset=None), "dataset", "dataset_info.json"),
    (dict(output_dir=""), "output_dir", "folder"),
    (dict(eval_strategy="steps"), "eval_strategy", "val_size"),
    (dict(max_steps=0), "max_steps", ">= 1"),
])
def test_validate_names_field_value_and_range(values, field, text):
    config = TrainConfig(**{"dataset": "identity", "output_dir": "o", **values})
    with pytest.raises(ConfigError) as err:
        config.validate()
    assert f"'{field}'" in str(err.value) and text in str(err.value)


def test_bad_yaml_value_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora_rank: eight\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'lora_rank' = 'eight'"):
        TrainConfig.from_yaml(path)


def test_every_field_has_help_labels_and_belongs_to_one_part():
    names = []
    for part in PARTS.values():
        for f in dataclasses.fields(part):
            assert f.metadata["help"] and f.metadata["label"] and f.metadata["label_zh"], f.name
            names.append(f.name)
    assert len(names) == len(set(names)) == len(TrainConfig.setting_fields())


def test_stage_registry_loads_sft_and_rejects_unknown():
    from kit.train import sft

    assert get_stage("sft") is sft.build_trainer
    with pytest.raises(ValueError, match="stage 'xyz'"):
        get_stage("xyz")
    def probe(ctx):
        return ctx

    register_stage("sft_test_probe", probe)
    assert get_stage("sft_test_probe") is probe


# ------------------------------------------------------------------- strict settings (issue 17)

@pytest.mark.parametrize("key, nearest", [("learning_rat", "learning_rate"), ("lora_rnak", "lora_rank"),
                                          ("cutof_len", "cutoff_len"), ("per_device_batch_size", None)])
def test_unknown_key_is_an_error_naming_the_nearest(tmp_path, key, nearest):
    path = tmp_path / "train.yaml"
    path.write_text(f"dataset: identity\n{key}: 3\n")
    with pytest.raises(ConfigError, match=f"unknown setting '{key}'") as err:
        TrainConfig.from_yaml(path)
    assert str(path) in str(err.value)
    if nearest:
        assert f"did you mean '{nearest}'" in str(err.value)


def test_cli_set_with_an_unknown_key_is_an_error(tmp_path, capsys):
    from kit.train import cli

    path = tmp_path / "train.yaml"
    path.write_text(f"dataset: identity\noutput_dir: {tmp_path / 'out'}\n")
    assert cli.main([str(path), "--set", "lora_rnak=64", "--preview"]) == 2
    assert "did you mean 'lora_rank'" in capsys.readouterr().err
    assert cli.main([str(path), "--set", "lora_rank=64", "--preview"]) == 0


def test_llamafactory_keys_the_kit_does_not_implement_stay_a_warning():
    with pytest.warns(UserWarning, match="ddp_timeout, use_badam"):
        config = TrainConfig.from_dict({"dataset": "identity", "ddp_timeout": 9, "use_badam": True})
    assert config.extra == {"ddp_timeout": 9, "use_badam": True}
