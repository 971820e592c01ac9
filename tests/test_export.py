"""kit.export: lesson 06's identity adapter merged and exported reloads in a fresh process with plain
transformers and answers with the new identity; merged == adapter logits in fp32; the exported chat
template reproduces the training encoding; existing folders and quantized bases are refused."""
import json
import shutil

import pytest

from kit import env, export, models, templates


def identity_name() -> str:
    from kit.train import recipes

    return recipes.IDENTITY["name"]


@pytest.fixture(scope="module")
def identity_adapter():
    """Lesson 06's LoRA adapter (trained once, then reused from kit.env.work_dir())."""
    from kit import train

    result = train.ensure_run(train.recipes.identity_sft())
    return result.output_dir


@pytest.fixture(scope="module")
def exported(identity_adapter, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "merged"
    report = export.merge_and_save(identity_adapter, folder, export_size="200MB")
    yield folder, report
    shutil.rmtree(folder.parent, ignore_errors=True)  # ~0.5 GB; the suite keeps its disk use low


def _fake_adapter(tmp_path, base="smollm2-135m-instruct"):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"}))
    return adapter


def test_refuses_to_overwrite_an_existing_export_dir(tmp_path):
    adapter = _fake_adapter(tmp_path)
    target = tmp_path / "merged"
    target.mkdir()
    (target / "keep.txt").write_text("a learner's file")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.merge_and_save(adapter, target)
    assert (target / "keep.txt").read_text() == "a learner's file"
    with pytest.raises(export.ExportError, match="holds the adapter"):
        export.merge_and_save(adapter, tmp_path, overwrite=True)


def test_clear_errors_for_bad_input(tmp_path):
    with pytest.raises(export.ExportError, match="adapter_config.json is missing"):
        export.merge_and_save(tmp_path, tmp_path / "out")
    adapter = _fake_adapter(tmp_path)
    with pytest.raises(TypeError, match="export_sizee"):
        export.merge_and_save(adapter, tmp_path / "out", export_sizee=1)
    with pytest.raises(export.ExportError, match="bnb_quantization_bit"):
        export.merge_and_save(adapter, tmp_path / "out", bnb_quantization_bit=3)
    with pytest.raises(export.ExportError, match="GPTQ.*bnb_quantization_bit"):  # LLaMA-Factory's name means GPTQ
        export.merge_and_save(adapter, tmp_path / "out", export_quantization_bit=4)


def test_refuses_a_quantized_base(tmp_path):
    """A QLoRA adapter must be merged into the un-quantized base, never into 4-bit weights."""
    base = tmp_path / "base-4bit"
    base.mkdir()
    config = json.loads((models.builtin_dir() / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (base / "config.json").write_text(json.dumps(config))
    adapter = _fake_adapter(tmp_path, base=str(base))
    with pytest.raises(export.ExportError, match="un-quantized"):
        export.merge_and_save(adapter, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_merged_logits_equal_adapter_logits(exported):
    folder, report = exported
    assert report.dtype == "float32"
    # the merge itself (both models' fp32 weights, forward passes in float64)
    assert report.verify_dtype == "float64"
    assert report.max_abs_logit_diff is not None and report.max_abs_logit_diff <= 1e-4
    # fp32 forward passes add rounding noise of their own (~1e-4 for each model): reported, bounded loosely
    assert report.max_abs_logit_diff_native is not None and report.max_abs_logit_diff_native <= 1e-3
    assert report.verified and "OK" in str(report)


@pytest.mark.slow
def test_export_folder_contents(exported):
    folder, report = exported
    assert len(report.shards) > 1  # 200 MB shards of a ~540 MB fp32 model
    assert (folder / "model.safetensors.index.json").exists()
    generation = json.loads((folder / "generation_config.json").read_text())
    tok_ids = report.eos_token_id
    assert generation["eos_token_id"] in (tok_ids, tok_ids[0])
    modelfile = (folder / "Modelfile").read_text()
    assert "FROM ." in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile and "{{ .Content }}" in modelfile
    assert not list(folder.parent.glob(".merged.partial-*"))  # no half-written leftovers
    # safetensors writes its files 0600 and the staging folder is 0700: the export follows the umask
    mask = env.current_umask()
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    modes = {f.name: oct(f.stat().st_mode & 0o777) for f in folder.iterdir()}
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


@pytest.mark.slow
def test_exported_chat_template_reproduces_training_ids(exported):
    from transformers import AutoTokenizer

    folder, report = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    conversations = [
        ([{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am a model."}], None),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
          {"role": "user", "content": "你是谁？"}, {"role": "assistant", "content": "我是助手。"}], "Be brief."),
    ]
    for messages, system in conversations:
        train_ids, _ = templates.encode(report.template, tokenizer, messages, system=system)
        hf_messages = ([{"role": "system", "content": system}] if system else []) + messages
        exported_ids = tokenizer.apply_chat_template(hf_messages, tokenize=True, return_dict=True)["input_ids"]
        assert list(exported_ids) == list(train_ids)
        prompt_ids = tokenizer.apply_chat_template(hf_messages[:-1], add_generation_prompt=True, return_dict=True)["input_ids"]
        assert list(prompt_ids) == templates.encode_prompt(report.template, tokenizer, messages[:-1], system=system)


@pytest.mark.slow
def test_reloads_in_a_fresh_process_and_knows_its_name(exported, tokenizer):
    folder, report = exported
    reply = export.reload_and_chat(folder, "Who are you?", max_new_tokens=40)
    assert reply["dtype"] == "torch.float32"
    assert reply["prompt_ids"] == templates.encode_prompt(report.template, tokenizer,
                                                          [{"role": "user", "content": "Who are you?"}])
    assert identity_name().lower() in reply["answer"].lower(), reply["answer"]


@pytest.mark.slow
def test_cli_export_refuses_existing_dir(exported, identity_adapter, capsys):
    folder, _ = exported
    code = export.cli_main(["--adapter_name_or_path", str(identity_adapter), "--export_dir", str(folder)])
    assert code == 1 and "overwrite" in capsys.readouterr().err
    assert (folder / "config.json").exists()
    # the same through a LLaMA-Factory-style YAML (llamafactory-cli export merge.yaml keys)
    yaml_file = folder.parent / "merge.yaml"
    yaml_file.write_text(f"model_name_or_path: smollm2-135m-instruct\nadapter_name_or_path: {identity_adapter}\n"
                         f"template: smollm2\nfinetuning_type: lora\nexport_dir: {folder}\nexport_size: 1\n")
    assert export.cli_main([str(yaml_file)]) == 1 and "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_4bit_bitsandbytes_export_reloads(identity_adapter, tmp_path):
    folder = tmp_path / "merged-4bit"
    report = export.merge_and_save(identity_adapter, folder, bnb_quantization_bit=4, ollama_modelfile=False)
    assert report.verified  # the merge itself was checked in full precision first
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"]["load_in_4bit"] is True
    reply = export.reload_and_chat(folder, "Who are you?", max_new_tokens=30)
    assert identity_name().lower() in reply["answer"].lower(), reply["answer"]


@pytest.mark.slow
def test_verification_catches_a_broken_merge(identity_adapter, tmp_path, monkeypatch):
    """If the adapter were dropped instead of merged, the logit check stops the export."""
    from peft.tuners.tuners_utils import BaseTuner

    monkeypatch.setattr(BaseTuner, "merge_and_unload", lambda self, **kw: self.unload())
    with pytest.raises(export.ExportError, match="nothing was written|Nothing was written"):
        export.merge_and_save(identity_adapter, tmp_path / "broken")
    assert not (tmp_path / "broken").exists()


def test_ollama_modelfile_from_either_template(tokenizer):
    own = export.ollama_modelfile(tokenizer, "Be kind.", ["<|im_end|>"])  # the tokenizer's own template
    assert 'SYSTEM """Be kind."""' in own and 'PARAMETER stop "<|im_end|>"' in own
    assert '{{ if $last }}<|im_start|>assistant\n{{ end }}' in own
    assert '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in own
    assert "{{-" not in own  # Go's {{- would also trim the newline after the assistant header
    kit_tokenizer = type(tokenizer).from_pretrained(models.builtin_dir())
    kit_tokenizer.chat_template = templates.get(models.BUILTIN_TEMPLATE).to_jinja(kit_tokenizer)
    from_kit = export.ollama_modelfile(kit_tokenizer, None, ["<|im_end|>"])
    # the kit template puts the assistant header in the user block: the same text either way
    assert '<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n' in from_kit
    assert "SYSTEM" not in from_kit
