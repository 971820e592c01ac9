"""kit.evaluate: BLEU-4 / ROUGE against hand-computed values (English, Chinese), perplexity against
transformers' own loss, predictions as JSONL, the results table."""
import copy
import math

import pytest
import torch

from kit import env, evaluate, models, templates

ROWS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "The capital of France is Paris."}], "system": "", "tools": ""},
    {"messages": [{"role": "user", "content": "Name a primary colour."},
                  {"role": "assistant", "content": "Red is a primary colour."},
                  {"role": "user", "content": "Another one?"},
                  {"role": "assistant", "content": "Blue."}], "system": "Answer briefly.", "tools": ""},
]


def test_tokenize_modes():
    assert evaluate.tokenize("Hello, World! 我爱北京") == ["hello", "world", "我", "爱", "北", "京"]
    assert evaluate.tokenize("我爱北京天安门", "jieba") == ["我", "爱", "北京", "天安门"]
    assert evaluate.tokenize("a  b\tc", "whitespace") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="mode"):
        evaluate.tokenize("x", "bytes")


def test_bleu4_hand_computed():
    # p1 = 5/6, p2 = 3/5, p3 = 1/4, p4 = 0/3 -> smoothing method 3: 1 / (2 * 3); BP = 1 (equal lengths)
    expected = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert evaluate.bleu4("the cat sat on the mat", "the cat is on the mat") == pytest.approx(expected)
    assert evaluate.bleu4("same words in order", "same words in order") == pytest.approx(100)
    assert evaluate.bleu4("", "anything") == 0.0


def test_rouge_hand_computed():
    scores = evaluate.rouge("the cat sat on the mat", "the cat is on the mat")
    assert scores["rouge-1"] == pytest.approx(100 * 5 / 6)      # 5 shared unigrams of 6
    assert scores["rouge-2"] == pytest.approx(100 * 3 / 5)      # the cat, on the, the mat
    assert scores["rouge-l"] == pytest.approx(100 * 5 / 6)      # LCS "the cat on the mat"
    # Chinese by characters: 4 of 7 predicted characters match a 4-character reference
    zh = evaluate.rouge("我爱北京天安门", "我爱北京")
    assert zh["rouge-1"] == pytest.approx(100 * 2 * (4 / 7) * 1 / (4 / 7 + 1))
    # whitespace splitting would see one "word" each and score 0: Chinese has no spaces
    assert evaluate.rouge("我爱北京天安门", "我爱北京", mode="whitespace")["rouge-1"] == 0.0
    # by jieba words: [我, 爱, 北京, 天安门] vs [我, 爱, 北京]: P = 3/4, R = 1
    assert evaluate.rouge("我爱北京天安门", "我爱北京", mode="jieba")["rouge-1"] == pytest.approx(100 * 6 / 7)


def test_score_predictions_mean_and_errors():
    preds = [{"predict": "a b c d", "label": "a b c d"}, {"predict": "", "label": "x"}]
    mean = evaluate.score_predictions(preds)
    assert mean == {"bleu-4": pytest.approx(50), "rouge-1": pytest.approx(50), "rouge-2": pytest.approx(50),
                    "rouge-l": pytest.approx(50)}
    with pytest.raises(KeyError, match=r"predictions\[0\]"):
        evaluate.score_predictions([{"prediction": "a"}])


def test_predictions_jsonl_roundtrip_and_no_overwrite(tmp_path):
    preds = [{"prompt": "你好", "predict": "你好！", "label": "你好。"}]
    path = evaluate.save_predictions(preds, tmp_path / "p.jsonl")
    assert "你好" in path.read_text(encoding="utf-8")  # kept readable
    assert evaluate.load_predictions(path) == preds
    with pytest.raises(FileExistsError, match="overwrite=True"):
        evaluate.save_predictions(preds, path)
    evaluate.save_predictions(preds * 2, path, overwrite=True)
    assert len(evaluate.load_predictions(path)) == 2
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        evaluate.load_predictions(tmp_path / "bad.jsonl")


def test_loss_matches_transformers_loss(builtin, tokenizer):
    model, _ = builtin
    out = evaluate.loss_and_perplexity(model, tokenizer, ROWS, models.BUILTIN_TEMPLATE, batch_size=2)
    # reference: transformers' own mean loss per row, weighted by the row's answer-token count
    nll, count = 0.0, 0
    for row in ROWS:
        ids, labels = templates.encode(models.BUILTIN_TEMPLATE, tokenizer, row["messages"], system=row["system"] or None)
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
        n = sum(label != -100 for label in labels[1:])
        nll, count = nll + float(loss) * n, count + n
    assert out["num_tokens"] == count and out["num_rows"] == 2
    assert out["eval_loss"] == pytest.approx(nll / count, rel=1e-4)
    assert out["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)


@pytest.mark.slow
def test_evaluate_base_vs_adapter_and_table(builtin, tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, _ = builtin
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    torch.manual_seed(0)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    base = evaluate.evaluate(peft_model, tokenizer, ROWS[:1], models.BUILTIN_TEMPLATE, name="base",
                             max_new_tokens=8, disable_adapter=True)
    tuned = evaluate.evaluate(peft_model, tokenizer, ROWS[:1], models.BUILTIN_TEMPLATE, name="tuned", max_new_tokens=8)
    plain = evaluate.loss_and_perplexity(model, tokenizer, ROWS[:1], models.BUILTIN_TEMPLATE)
    assert base.metrics["eval_loss"] == pytest.approx(plain["eval_loss"], rel=1e-5)  # adapter off = base
    assert tuned.metrics["eval_loss"] != pytest.approx(plain["eval_loss"], rel=1e-5)
    assert set(base.predictions[0]) == {"prompt", "predict", "label"} and base.predictions[0]["predict"]
    assert base.predictions[0]["label"] == "The capital of France is Paris."
    table = evaluate.results_table({"base": base, "tuned": tuned.metrics})
    assert table.splitlines()[0] == "| model | eval_loss | perplexity | bleu-4 | rouge-1 | rouge-2 | rouge-l |"
    assert "| base |" in table and "| tuned |" in table
    assert base.save_predictions(tmp_path / "base.jsonl").exists()


def test_jiebas_own_import_warnings_do_not_reach_the_learner(tmp_path):
    """On Python 3.12 jieba warns at import (pkg_resources deprecated, invalid escapes): the kit's call
    keeps the output quiet. A stand-in jieba that warns at import, with warnings as errors."""
    import subprocess
    import sys

    fake = tmp_path / "jieba"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import warnings\nwarnings.warn('pkg_resources is deprecated as an API', UserWarning)\n"
        "warnings.warn('invalid escape sequence', SyntaxWarning)\n"
        "def setLogLevel(level):\n    pass\n"
        "def lcut(text):\n    return [text[:2], text[2:]]\n")
    code = "from kit import evaluate; print(evaluate.tokenize('今天天气', 'jieba'))"
    env_vars = dict(__import__("os").environ, PYTHONPATH=f"{tmp_path}:{env.repo_root()}")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True,
                          env=env_vars, timeout=120)
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip() == "['今天', '天气']" and "Warning" not in done.stderr
