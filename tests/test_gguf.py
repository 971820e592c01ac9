"""kit.export.to_gguf: lesson 06's merged model written as GGUF (f16 and q8_0) loads back through
transformers' GGUF reader, agrees with the merged folder within the stated tolerance and answers the
identity question the same; llama.cpp names, tokenizer and chat template are in the file; the
Modelfile next to it renders the training text; bad input is refused clearly."""
import json
import shutil

import pytest

from kit import export, gguf_export, ollama, templates


def identity_name() -> str:
    from kit.train import recipes

    return recipes.IDENTITY["name"]


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """Lesson 06's adapter (kit.train.ensure_run reuses the run) merged into a plain folder."""
    from kit import train

    adapter = train.ensure_run(train.recipes.identity_sft()).output_dir
    folder = tmp_path_factory.mktemp("gguf") / "merged"
    export.merge_and_save(adapter, folder, verify=False, ollama_modelfile=False)
    yield folder
    shutil.rmtree(folder.parent, ignore_errors=True)  # ~0.5 GB; the suite keeps its disk use low


def test_refuses_other_architectures(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(export.GGUFExportError, match=r"model_type 'gpt2'.*supported: \['llama', 'mistral'\]"):
        export.to_gguf(tmp_path, tmp_path / "model.gguf")
    assert export.cli_main(["--export_dir", str(tmp_path), "--gguf", str(tmp_path / "model.gguf")]) == 1
    assert "supported: ['llama', 'mistral']" in capsys.readouterr().err
    assert not (tmp_path / "model.gguf").exists()
    with pytest.raises(export.GGUFExportError, match="config.json is missing"):
        export.to_gguf(tmp_path / "nowhere", tmp_path / "model.gguf")


def test_refuses_unknown_quantization(tmp_path):
    from kit import models

    with pytest.raises(export.GGUFExportError, match="did you mean .q8_0."):
        export.to_gguf(models.builtin_dir(), tmp_path / "model.gguf", quantization="q8-0")
    with pytest.raises(export.GGUFExportError, match="llama-quantize"):
        export.to_gguf(models.builtin_dir(), tmp_path / "model.gguf", quantization="q4_k_m")


def test_qk_permutation_matches_transformers_reader():
    """Our permutation is undone exactly by the reader's inverse (9 query heads, 3 key heads of 64)."""
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    reader = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    rng = np.random.default_rng(0)
    for name, rows, heads in (("blk.0.attn_q.weight", 576, 9), ("blk.0.attn_k.weight", 192, 3)):
        weights = rng.standard_normal((rows, 8)).astype(np.float32)
        permuted = gguf_export.permute_qk(weights, heads)
        assert not np.array_equal(permuted, weights)
        assert np.array_equal(reader.process(permuted, name).weights, weights)


@pytest.mark.slow
def test_f16_gguf_reloads_and_agrees(merged, tmp_path):
    import gguf

    out = tmp_path / "kestrel-f16.gguf"
    report = export.to_gguf(merged, out, quantization="f16")
    print(report)
    assert report.verified and report.max_abs_logit_diff <= gguf_export.TOLERANCE["f16"] == report.tolerance
    assert report.top1_agreement >= 0.99
    assert report.same_answer and identity_name().lower() in report.answer.lower(), report
    reader = gguf.GGUFReader(out)
    fields = {name: reader.fields[name].contents() for name in
              ("general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.eos_token_id", "tokenizer.chat_template")}
    assert fields["general.architecture"] == "llama" and fields["tokenizer.ggml.model"] == "gpt2"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.chat_template"] == templates.get(report.template).to_jinja(tokenizer)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    # the Modelfile next to it: FROM the file, a TEMPLATE that renders the training text, stop words
    modelfile = ollama.parse_modelfile((tmp_path / "kestrel-f16.Modelfile").read_text())
    assert modelfile["from"] == "./kestrel-f16.gguf" and "<|im_end|>" in modelfile["stop"]
    assert ollama.check(report.template, (tmp_path / "kestrel-f16.Modelfile").read_text(), tokenizer=tokenizer) == []
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.to_gguf(merged, out, quantization="f16", verify=False)


@pytest.mark.slow
def test_q8_0_through_the_cli(merged, tmp_path, capsys):
    from kit.__main__ import main

    out = tmp_path / "kestrel-q8_0.gguf"
    assert main(["export", "--export_dir", str(merged), "--gguf", str(out), "--quantization", "q8_0"]) == 0
    printed = capsys.readouterr().out
    assert "OK" in printed and out.exists()
    answers = next(line for line in printed.splitlines() if line.startswith("answer"))
    assert answers.lower().count(identity_name().lower()) == 2, answers  # gguf and folder alike
    gguf_answer, folder_answer = answers.split("|")
    assert gguf_answer.split("gguf", 1)[1].strip() == folder_answer.split("folder", 1)[1].strip()
    # 8-bit blocks: about half the f16 size (1 byte + a 2-byte scale per 32 weights)
    assert out.stat().st_size < 0.6 * 2 * 135e6


@pytest.mark.slow
def test_a_wrong_permutation_is_caught(merged, tmp_path, monkeypatch):
    """Without llama.cpp's Q/K permutation the reloaded model disagrees: nothing is written."""
    monkeypatch.setattr(gguf_export, "permute_qk", lambda weights, heads: weights)
    with pytest.raises(export.GGUFExportError, match="nothing was written"):
        export.to_gguf(merged, tmp_path / "broken.gguf", quantization="f32", ollama_modelfile=False)
    assert not (tmp_path / "broken.gguf").exists() and not list(tmp_path.glob(".broken.partial-*"))


def test_shared_words_counts_the_common_start_of_two_greedy_answers():
    report = gguf_export.GGUFReport("f.gguf", "q8_0", 1, answer="I am Kestrel, here to help and learn.",
                                    reference_answer="I am Kestrel, here to help and answer questions")
    assert report.shared_words == 7 and report.same_answer is False  # "I am Kestrel, here to help and"
    assert gguf_export.drift_table([report])[0]["shared words"] == 7
    same = gguf_export.GGUFReport("f.gguf", "f16", 1, answer="Hello there", reference_answer="Hello there")
    assert same.shared_words == 2 and same.same_answer
    assert gguf_export.GGUFReport("f.gguf", "f16", 1).shared_words is None
