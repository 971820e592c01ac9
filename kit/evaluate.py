"""Score a model: loss and perplexity on a validation set, generated answers on a test set scored
with BLEU-4 and ROUGE-1/2/L, predictions saved as JSONL, and a small results table.

    ppl = kit.evaluate.loss_and_perplexity(model, tok, rows, template="smollm2")
    result = kit.evaluate.evaluate(model, tok, rows, template="smollm2", name="tuned")
    result.save_predictions(kit.env.work_dir() / "10_eval" / "tuned.jsonl")
    print(kit.evaluate.results_table({"base": base.metrics, "tuned": result.metrics}))

Definitions (the same as LLaMA-Factory's `do_predict` / `ComputeSimilarity`, reported x100):
- eval_loss = mean cross-entropy in nats per answer token (prompt tokens masked with -100, as in
  training); perplexity = exp(eval_loss), "how many tokens the model hesitates between".
- BLEU-4: sentence BLEU (Papineni et al. 2002), uniform 1..4-gram weights, brevity penalty, with
  Chen & Cherry (2014) smoothing method 3 for n-gram orders without a match (nltk).
- ROUGE-1/2/L: F1 of unigram / bigram overlap and of the longest common subsequence (Lin 2004;
  Google's rouge-score package with our tokenizer).
Text is split before scoring by `mode`: "chars" (default: every CJK character is one token, other
scripts split into lower-cased words; punctuation dropped), "jieba" (Chinese words by jieba, as
LLaMA-Factory does) or "whitespace". Never raw whitespace for Chinese, which has none.

Left out: corpus-level BLEU, multiple references, benchmark suites (MMLU/C-Eval), batched generation.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

METRICS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
MODES = ("chars", "jieba", "whitespace")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


# ------------------------------------------------------------------------------------ tokens

def tokenize(text: str, mode: str = "chars") -> list[str]:
    """Split text into scoring tokens (see the module docstring for the modes)."""
    if mode == "chars":
        return _TOKEN.findall(text.lower())
    if mode == "jieba":
        import logging
        import warnings

        with warnings.catch_warnings():
            # jieba's import warns about its own code on newer Pythons (pkg_resources deprecated; invalid
            # escape sequences when its files are compiled at first import): nothing the learner did
            warnings.simplefilter("ignore")
            import jieba

        jieba.setLogLevel(logging.WARNING)
        return [w for w in (t.strip().lower() for t in jieba.lcut(text)) if w and _TOKEN.search(w)]
    if mode == "whitespace":
        return text.lower().split()
    raise ValueError(f"mode={mode!r}: choose one of {MODES}")


class _Tokenizer:
    """The object rouge-score wants (a .tokenize(text) method)."""

    def __init__(self, mode: str):
        self.mode = mode

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.mode)


# ----------------------------------------------------------------------------------- metrics

def bleu4(prediction: str, reference: str, mode: str = "chars") -> float:
    """Sentence BLEU-4 in percent (0-100), smoothing method 3 (LLaMA-Factory's choice)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp, ref = tokenize(prediction, mode), tokenize(reference, mode)
    if not hyp or not ref:
        return 0.0
    return 100.0 * sentence_bleu([ref], hyp, weights=(0.25, 0.25, 0.25, 0.25),
                                 smoothing_function=SmoothingFunction().method3)


def rouge(prediction: str, reference: str, mode: str = "chars") -> dict:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 in percent: {"rouge-1": .., "rouge-2": .., "rouge-l": ..}."""
    from rouge_score.rouge_scorer import RougeScorer

    if not tokenize(prediction, mode) or not tokenize(reference, mode):
        return {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tokenizer(mode))
    scores = scorer.score(target=reference, prediction=prediction)
    return {"rouge-1": 100.0 * scores["rouge1"].fmeasure, "rouge-2": 100.0 * scores["rouge2"].fmeasure,
            "rouge-l": 100.0 * scores["rougeL"].fmeasure}


def score_pair(prediction: str, reference: str, mode: str = "chars") -> dict:
    return {"bleu-4": bleu4(prediction, reference, mode), **rouge(prediction, reference, mode)}


def score_predictions(predictions: list[dict], mode: str = "chars") -> dict:
    """Mean of each metric over rows {"predict": .., "label": ..} (LLaMA-Factory's JSONL keys)."""
    if not predictions:
        raise ValueError("score_predictions: no predictions to score")
    totals = dict.fromkeys(METRICS, 0.0)
    for i, row in enumerate(predictions):
        if "predict" not in row or "label" not in row:
            raise KeyError(f"predictions[{i}] needs 'predict' and 'label' keys, has {sorted(row)}")
        for key, value in score_pair(row["predict"], row["label"], mode).items():
            totals[key] += value
    return {key: value / len(predictions) for key, value in totals.items()}


# ---------------------------------------------------------------------------------- rows

def _rows(dataset) -> list[dict]:
    rows = [dict(r) for r in dataset]
    if not rows:
        raise ValueError("the evaluation set is empty")
    for i, row in enumerate(rows):
        if "messages" not in row:
            raise KeyError(f"row {i} has no 'messages' (expected canonical rows from kit.data.load_dataset); "
                           f"keys: {sorted(row)}")
    return rows


def split_answer(row: dict) -> tuple[list[dict], str]:
    """A canonical SFT row -> (prompt messages, the reference answer = the last assistant message)."""
    messages = row["messages"]
    if not messages or messages[-1]["role"] not in ("assistant", "function"):
        raise ValueError(f"row ends with role {messages[-1]['role'] if messages else None!r}; "
                         "an SFT row must end with the assistant's answer")
    return messages[:-1], messages[-1]["content"]


def loss_and_perplexity(model, tokenizer, dataset, template, cutoff_len: int = 1024, batch_size: int = 4,
                        disable_adapter: bool = False) -> dict:
    """Token-weighted mean cross-entropy (nats per answer token) and perplexity = exp(loss).

    Rows are encoded exactly as for training (kit.templates.encode: prompt tokens masked).
    Returns {"eval_loss", "perplexity", "num_tokens", "num_rows"}.
    """
    from kit import scoring, templates

    encoded = []
    for i, row in enumerate(_rows(dataset)):
        ids, labels = templates.encode(template, tokenizer, row["messages"], system=row.get("system") or None,
                                       tools=row.get("tools") or None, cutoff_len=cutoff_len)
        if all(label == templates.IGNORE_INDEX for label in labels[1:]):
            raise ValueError(f"row {i}: no answer token left after cutoff_len={cutoff_len}; raise cutoff_len")
        encoded.append((ids, labels))
    total_nll, total_tokens = scoring.label_nll(
        model, tokenizer, [{"input_ids": ids, "labels": labels} for ids, labels in encoded], batch_size,
        disable_adapter)
    loss = total_nll / total_tokens
    return {"eval_loss": loss, "perplexity": math.exp(loss), "num_tokens": total_tokens, "num_rows": len(encoded)}


def predict(model, tokenizer, dataset, template=None, max_new_tokens: int = 64, disable_adapter: bool = False,
            system: str | None = None) -> list[dict]:
    """Greedy answers to every test row: [{"prompt", "predict", "label"}] (LLaMA-Factory's keys)."""
    from kit.chat import ChatSession, SamplingParams

    out = []
    for row in _rows(dataset):
        prompt, label = split_answer(row)
        session = ChatSession(model, tokenizer, template=template, system=row.get("system") or system,
                              params=SamplingParams.greedy(max_new_tokens), disable_adapter=disable_adapter,
                              tools=row.get("tools") or None)
        out.append({"prompt": prompt[-1]["content"] if prompt else "", "predict": session.respond(prompt),
                    "label": label})
    return out


def save_predictions(predictions: list[dict], path, overwrite: bool = False) -> Path:
    """Write one JSON object per line (UTF-8, Chinese kept readable). Refuses to replace a file
    unless overwrite=True."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in predictions:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def load_predictions(path) -> list[dict]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from exc
    return rows


# ---------------------------------------------------------------------------------- together

@dataclass
class EvalResult:
    name: str
    metrics: dict = field(default_factory=dict)       # eval_loss, perplexity, bleu-4, rouge-1/2/l
    predictions: list = field(default_factory=list)   # [{"prompt", "predict", "label"}]

    def save_predictions(self, path, overwrite: bool = False) -> Path:
        return save_predictions(self.predictions, path, overwrite)


def evaluate(model, tokenizer, dataset, template, name: str = "model", max_new_tokens: int = 64,
             cutoff_len: int = 1024, mode: str = "chars", disable_adapter: bool = False) -> EvalResult:
    """Perplexity, then greedy predictions scored with BLEU-4 and ROUGE, on the same rows."""
    metrics = loss_and_perplexity(model, tokenizer, dataset, template, cutoff_len, disable_adapter=disable_adapter)
    predictions = predict(model, tokenizer, dataset, template, max_new_tokens, disable_adapter)
    metrics.update(score_predictions(predictions, mode))
    return EvalResult(name, metrics, predictions)


def results_table(results: dict) -> str:
    """A Markdown table, one row per model: {"base": metrics, "tuned": metrics} (or EvalResults)."""
    from kit.chat import format_table

    columns = ("eval_loss", "perplexity", *METRICS)
    rows = []
    for name, metrics in results.items():
        metrics = metrics.metrics if isinstance(metrics, EvalResult) else metrics
        rows.append({"model": name, **{c: metrics[c] for c in columns if c in metrics}})
    return format_table(rows)
