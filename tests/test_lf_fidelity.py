"""Fidelity to LLaMA-Factory, checked against fixtures its OWN code wrote (tests/fixtures/
make_lf_fixtures.py; LLaMA-Factory is not needed here): exported YAMLs parse like the originals, the
defaults table is LLaMA-Factory's, stage names are honest, templates encode token for token."""
import json
from pathlib import Path

import pytest
import yaml

from kit.train import ConfigError, TrainConfig
from kit.train import lf_defaults
from kit.train.lf_defaults import default as lf_default

FIXTURES = Path(__file__).parent / "fixtures"
ARGS = json.loads((FIXTURES / "lf_args.json").read_text(encoding="utf-8"))

# the settings the issue names, with the parser group LLaMA-Factory puts them in
NAMED = [("finetuning", "stage"), ("finetuning", "finetuning_type"), ("model", "quantization_bit"),
         ("model", "quantization_method"), ("data", "template"), ("data", "packing"),
         ("training", "lr_scheduler_type"), ("model", "disable_gradient_checkpointing"),
         ("training", "gradient_checkpointing")]


def test_defaults_table_is_llamafactorys():
    assert lf_defaults.LF_VERSION == ARGS["llamafactory"]
    assert lf_defaults.LF_DEFAULTS == ARGS["defaults"]
    assert lf_default("packing", "pt") is True and lf_default("packing", "sft") is False


@pytest.mark.parametrize("example", sorted(ARGS["examples"]))
def test_exported_example_parses_like_the_original(example):
    entry = ARGS["examples"][example]
    assert "export_error" not in entry, entry.get("export_error")
    source = yaml.safe_load(entry["yaml"])
    config = TrainConfig.from_dict(source, source=example, warn=False, defaults="llamafactory")
    exported = yaml.safe_load(config.to_llamafactory_yaml())
    # today's export is the one LLaMA-Factory parsed when the fixture was made...
    assert exported == entry["exported"]
    # ...and LLaMA-Factory's parse of it equals its parse of its own example, every argument
    for group, values in entry["original"].items():
        diff = {k: (v, entry["exported_parsed"][group].get(k)) for k, v in values.items()
                if entry["exported_parsed"][group].get(k) != v}
        assert not diff, (group, diff)
    # the named settings, once more without LLaMA-Factory's recorded parse: export + defaults table
    stage = exported.get("stage", "sft")
    for group, key in NAMED:
        if key in lf_defaults.LF_DEFAULTS and key not in ("gradient_checkpointing",):
            assert exported.get(key, lf_default(key, stage)) == entry["original"][group][key], key
    # only what differs from LLaMA-Factory's defaults is written
    for key, value in exported.items():
        assert value != lf_default(key, stage) or (key == "quantization_method" and "quantization_bit" in exported)


def test_export_writes_only_what_differs_from_llamafactory():
    config = TrainConfig(dataset="identity", output_dir="saves/x")
    exported = config.llamafactory_dict()
    expected = {k for k, v in config.to_dict().items()
                if k in lf_defaults.LF_DEFAULTS and v != lf_default(k)
                and not (k in ("packing", "disable_gradient_checkpointing") and v is None)}
    assert set(exported) == expected
    # the kit's own defaults that LLaMA-Factory does not share are spelled out
    assert exported["lr_scheduler_type"] == "cosine" and exported["plot_loss"] is True
    preview = config.command_preview()
    assert "--lr_scheduler_type cosine" in preview and "--lora_rank" not in preview
    assert len(preview.splitlines()) == len(exported) + 1


def test_pretraining_export_packs_and_has_no_template():
    config = TrainConfig(stage="pt", dataset="c4_demo", output_dir="saves/pt", packing=False)
    exported = config.llamafactory_dict()
    assert "template" not in exported and "packing" not in exported  # LLaMA-Factory packs pt by default
    assert exported["stage"] == "pt"


def test_qlora_export_says_bnb():
    for method in ("bitsandbytes", "bnb"):
        config = TrainConfig(dataset="identity", output_dir="o", quantization_bit=4, quantization_method=method)
        exported = yaml.safe_load(config.to_llamafactory_yaml())
        assert (exported["quantization_bit"], exported["quantization_method"]) == (4, "bnb")
        assert "--quantization_method bnb" in config.command_preview()
    assert "quantization_method" not in TrainConfig(dataset="identity", output_dir="o").llamafactory_dict()


def test_stage_ppo_is_refused_naming_grpo(tmp_path):
    path = tmp_path / "ppo.yaml"
    path.write_text("stage: ppo\ndataset: identity\noutput_dir: o\n")
    with pytest.raises(ConfigError, match="grpo") as err:
        TrainConfig.from_yaml(path)
    assert str(path) in str(err.value) and "value model" in str(err.value)
    with pytest.raises(ConfigError, match="grpo"):
        TrainConfig(stage="ppo")
    grpo = TrainConfig(stage="grpo", dataset="identity", output_dir="o", reward_model="rule:length")
    grpo.validate()  # the kit runs it...
    with pytest.raises(ConfigError, match="no GRPO"):
        grpo.to_llamafactory_yaml()  # ...but never exports it as LLaMA-Factory's ppo
    assert grpo.command_preview().startswith("# not a LLaMA-Factory run")


def test_setting_llamafactory_lacks_is_refused_with_nearest_name():
    config = TrainConfig(dataset="identity", output_dir="o", extra={"num_generation": 4})
    with pytest.raises(ConfigError, match="num_generation.*nearest"):
        config.to_llamafactory_yaml()


def test_llamafactory_defaults_reading_changes_only_unset_keys():
    kit = TrainConfig.from_dict({"dataset": "identity", "lora_rank": 16})
    lf = TrainConfig.from_dict({"dataset": "identity", "lora_rank": 16}, defaults="llamafactory")
    assert kit.lora_rank == lf.lora_rank == 16
    assert (lf.per_device_train_batch_size, lf.lr_scheduler_type, lf.disable_gradient_checkpointing) == \
        (lf_default("per_device_train_batch_size"), "linear", False)
    assert kit.template == lf.template  # LLaMA-Factory has no default template; the kit keeps its own
    with pytest.raises(ConfigError, match="defaults"):
        TrainConfig.from_dict({}, defaults="lf")


# ----------------------------------------------------------------------------- templates

TEMPLATES = json.loads((FIXTURES / "lf_templates.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def base_tokenizer():
    from transformers import AutoTokenizer

    from kit import models

    return AutoTokenizer.from_pretrained(str(models.builtin_dir()))


_FIXED: dict = {}


def kit_encoding(name, base_tokenizer, case):
    """The kit's encoding of one fixture case: (input_ids, labels) or prompt ids. The tokenizer is a
    copy fixed for the template (as LLaMA-Factory fixes it), made once per template and thinking mode."""
    import copy

    from kit import templates

    options = case["options"]
    template = templates.get(name, enable_thinking=options.get("enable_thinking", True))
    key = (name, template.enable_thinking, id(base_tokenizer))
    if key not in _FIXED:
        _FIXED.clear()  # one template at a time: keeps memory flat
        _FIXED[key] = copy.deepcopy(base_tokenizer)
        templates.fix_tokenizer(template, _FIXED[key])
    tokenizer = _FIXED[key]
    if options.get("generate"):
        return {"prompt_ids": templates.encode_prompt(template, tokenizer, case["messages"], case["system"],
                                                      case["tools"])}
    ids, labels = templates.encode(template, tokenizer, case["messages"], case["system"], case["tools"],
                                   cutoff_len=1024, mask_history=options.get("mask_history", False))
    return {"input_ids": ids, "labels": labels}


def test_registry_has_60_families_and_shares_the_fixtures():
    from kit import templates

    assert len(templates.names()) >= 60
    assert set(TEMPLATES["templates"]) <= set(templates.names())


@pytest.mark.parametrize("name", sorted(TEMPLATES["templates"]))
def test_shared_template_encodes_like_llamafactory(name, base_tokenizer):
    from kit.templates import families

    expected_cases = TEMPLATES["templates"][name]["cases"]
    for case_name, expected in expected_cases.items():
        case = TEMPLATES["cases"][case_name]
        difference = families.LF_DIFFERENCES.get((name, case_name))
        if "error" in expected:  # LLaMA-Factory itself cannot encode it: the kit must refuse too
            with pytest.raises(ValueError):
                kit_encoding(name, base_tokenizer, case)
            continue
        try:
            got = kit_encoding(name, base_tokenizer, case)
        except ValueError as err:
            assert difference, f"{name}/{case_name}: kit raised {err}"
            continue
        if difference:  # a documented, deliberate difference must still be one
            assert got != expected, f"{name}/{case_name}: listed in LF_DIFFERENCES but now identical"
        else:
            assert got == expected, f"{name}/{case_name}"
