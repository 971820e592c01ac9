"""What a preference or pre-training run did: margins, accuracy, divergence from the reference, perplexity.

From a run's log (TRL's own metrics, read back after training):
    preference_curves(log_history)   steps + chosen / rejected reward, margin, accuracy, kl, reward
    plot_preference(log_history)     those curves as a matplotlib Figure
Measured on a model (independent of the trainer's logs, so "before" and "after" are comparable):
    perplexity(model, tokenizer, texts)        exp(mean next-token NLL) over every token of the texts
    answer_perplexity(model, tokenizer, template, rows)   the same over the answer tokens of chat rows
    pair_logps(model, tokenizer, template, rows)   log π(answer | prompt) of each chosen / rejected answer
    dpo_rewards(policy_logps, reference_logps, beta)   DPO's implicit rewards, margins and accuracy
    reward_accuracy(reward_model, tokenizer, template, rows)   an rm model's scores on pairs
    reference_kl(model, ref_model, tokenizer, template, rows)  token-level KL(π ‖ π_ref) on the answers

Units: log-probabilities and NLL in nats (natural log); perplexity = e^(NLL per token), dimensionless.
`ref_model=None` with a peft model means "the same model with its adapter switched off".
Not here: win rates judged by another model, reward-model calibration, sampling-based KL estimates.
"""
from __future__ import annotations

import math

from kit import scoring

# TRL 1.16 log keys -> our names (DPO/ORPO/CPO/KTO share rewards/*; RewardTrainer logs accuracy/margin)
_PREF_KEYS = {
    "chosen": ("rewards/chosen",),
    "rejected": ("rewards/rejected",),
    "margin": ("rewards/margins", "margin"),
    "accuracy": ("rewards/accuracies", "accuracy"),
    "kl": ("kl", "objective/kl"),
    "reward": ("reward", "mean_reward"),
}


def preference_curves(log_history: list[dict]) -> dict:
    """{"steps": [...], "chosen", "rejected", "margin", "accuracy", "kl", "reward": [...]} from a
    training log (training entries only, in step order). A metric the method does not log is an
    empty list; entries that lack it get NaN so that every list lines up with `steps`."""
    rows = [e for e in log_history if "step" in e and "loss" in e]
    out = {"steps": [e["step"] for e in rows]}
    for name, keys in _PREF_KEYS.items():
        key = next((k for k in keys if any(k in e for e in rows)), None)
        out[name] = [float(e.get(key, math.nan)) for e in rows] if key else []
    return out


def plot_preference(log_history: list[dict], title: str = "preference training", path=None):
    """Left: chosen / rejected rewards and their margin; right: accuracy (and KL when logged)."""
    from kit.plots import Figure

    curves = preference_curves(log_history)
    steps = curves["steps"]
    fig = Figure(figsize=(9, 3.5), dpi=100)
    left, right = fig.subplots(1, 2)
    for name, color in (("chosen", "tab:green"), ("rejected", "tab:red"), ("margin", "tab:blue"),
                        ("reward", "tab:purple")):
        if curves[name]:
            left.plot(steps, curves[name], "o-", color=color, label=name, markersize=3)
    left.axhline(0, color="gray", lw=0.8)
    left.set_xlabel("step")
    left.set_ylabel("reward (β·log-ratio, or RM score)")
    left.set_title(title)
    if curves["accuracy"]:
        right.plot(steps, curves["accuracy"], "o-", color="tab:blue", label="accuracy", markersize=3)
        right.set_ylim(-0.05, 1.05)
        right.set_ylabel("share of pairs with chosen > rejected")
    if curves["kl"]:
        axis = right.twinx() if curves["accuracy"] else right
        axis.plot(steps, curves["kl"], "s--", color="tab:orange", label="KL to reference (nats)", markersize=3)
        axis.set_ylabel("KL (nats)")
        axis.legend(loc="lower right")
    right.set_xlabel("step")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png")
    return fig


# ----------------------------------------------------------------------------- on a model

def _answer_logps(model, tokenizer, sequences: list[list[int]], starts: list[int], batch_size: int,
                  disable_adapter: bool = False) -> list[float]:
    """Sum of log p(token) over positions >= start of each sequence (the answer), in nats."""
    logps = scoring.token_logps(model, tokenizer, sequences, batch_size, disable_adapter)
    return [float(logp[start - 1:].sum()) for logp, start in zip(logps, starts)]


def pair_logps(model, tokenizer, template, rows, cutoff_len: int = 1024, batch_size: int = 4,
               disable_adapter: bool = False) -> dict:
    """{"chosen": [...], "rejected": [...]}: log π(answer | prompt) in nats for each ranking row,
    encoded as the dpo stage encodes it (kit.templates.encode_pair)."""
    from kit.train.dpo import encode_pairs

    cols = encode_pairs(rows, tokenizer, template, cutoff_len, stage="diagnostics")
    starts = [len(p) for p in cols["prompt_ids"]]
    return {side: _answer_logps(model, tokenizer, cols[f"{side}_input_ids"], starts, batch_size, disable_adapter)
            for side in ("chosen", "rejected")}


def dpo_rewards(policy: dict, reference: dict, beta: float) -> dict:
    """DPO's implicit rewards r = β·(log π - log π_ref) for each pair (Rafailov et al. 2023, eq. 5):
    {"chosen", "rejected", "margins": lists; "accuracy": share with r_chosen > r_rejected (ties count
    as wrong, as in TRL); "mean_margin"}."""
    chosen = [beta * (p - r) for p, r in zip(policy["chosen"], reference["chosen"])]
    rejected = [beta * (p - r) for p, r in zip(policy["rejected"], reference["rejected"])]
    margins = [c - r for c, r in zip(chosen, rejected)]
    n = max(len(margins), 1)
    return {"chosen": chosen, "rejected": rejected, "margins": margins,
            "accuracy": sum(m > 0 for m in margins) / n, "mean_margin": sum(margins) / n}


def likelihood_accuracy(logps: dict) -> float:
    """Share of pairs where the model gives the chosen answer a higher log-probability (no reference)."""
    pairs = list(zip(logps["chosen"], logps["rejected"]))
    return sum(c > r for c, r in pairs) / max(len(pairs), 1)


def reward_accuracy(reward_model, tokenizer, template, rows, cutoff_len: int = 1024) -> dict:
    """An rm model's scores on ranking rows: {"chosen", "rejected", "margins", "accuracy", "mean_margin"}."""
    from kit.train import rm

    chosen, rejected = [], []
    for row in rows:
        system = row.get("system") or None
        prompt = list(row["messages"])
        chosen += rm.score(reward_model, tokenizer, template, [prompt + [row["chosen"]]], system, cutoff_len)
        rejected += rm.score(reward_model, tokenizer, template, [prompt + [row["rejected"]]], system, cutoff_len)
    margins = [c - r for c, r in zip(chosen, rejected)]
    n = max(len(margins), 1)
    return {"chosen": chosen, "rejected": rejected, "margins": margins,
            "accuracy": sum(m > 0 for m in margins) / n, "mean_margin": sum(margins) / n}


def reference_kl(model, ref_model, tokenizer, template, rows, cutoff_len: int = 1024, batch_size: int = 4) -> float:
    """Mean over the chosen answers' tokens of KL(π(·|context) ‖ π_ref(·|context)) in nats, summed over
    the whole vocabulary at each position (teacher-forced on the data, not sampled). 0 = the policy
    has not moved from the reference. ref_model=None: the peft model with its adapter off."""
    import torch

    from kit.train.dpo import encode_pairs

    if ref_model is None and not hasattr(model, "disable_adapter"):
        raise ValueError("reference_kl: ref_model=None needs a peft model (its adapter is switched off); "
                         "pass the reference model")
    cols = encode_pairs(rows, tokenizer, template, cutoff_len, stage="diagnostics")
    starts = [len(p) for p in cols["prompt_ids"]]
    features = [{"input_ids": ids} for ids in cols["chosen_input_ids"]]
    total, count, seen = 0.0, 0, 0
    for batch, logits in scoring.batch_logits(model, tokenizer, features, batch_size):
        logp = torch.log_softmax(logits, -1)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if ref_model is None:
            with scoring.adapter_disabled(model):
                ref_logits = model(input_ids=ids, attention_mask=mask).logits
        else:
            with scoring.eval_mode(ref_model):
                ref_logits = ref_model(input_ids=ids.to(scoring.device_of(ref_model)),
                                       attention_mask=mask.to(scoring.device_of(ref_model))).logits.to(logp.device)
        ref_logp = torch.log_softmax(ref_logits.float(), -1)
        kl = (logp.exp() * (logp - ref_logp)).sum(-1)  # (batch, seq): KL at each position
        for row, n in enumerate(mask.sum(-1).tolist()):
            start = starts[seen + row]
            # positions start-1 .. len-2 predict the answer tokens
            total += float(kl[row, start - 1:n - 1].sum())
            count += n - start
        seen += len(ids)
    return total / max(count, 1)


def token_nll(model, tokenizer, texts, cutoff_len: int = 1024, batch_size: int = 4) -> tuple[float, int]:
    """(summed next-token NLL in nats, number of predicted tokens) over `texts`, each encoded as the pt
    stage does (special tokens + text + EOS) and cut into windows of cutoff_len (no token skipped
    except the first of each window, which has no context)."""
    from kit import templates

    windows = []
    for text in texts:
        ids, _ = templates.encode_pretrain(tokenizer, text, cutoff_len=10**9)
        windows += [ids[i:i + cutoff_len] for i in range(0, len(ids), cutoff_len) if len(ids[i:i + cutoff_len]) > 1]
    return scoring.label_nll(model, tokenizer, [{"input_ids": w, "labels": w} for w in windows], batch_size)


def perplexity(model, tokenizer, texts, cutoff_len: int = 1024, batch_size: int = 4) -> float:
    """exp(NLL per token) of `texts` under the model (token-weighted over all texts). Lower is better;
    a model that guessed uniformly over a vocabulary of V tokens would score V."""
    if isinstance(texts, str):
        texts = [texts]
    total, count = token_nll(model, tokenizer, list(texts), cutoff_len, batch_size)
    if count == 0:
        raise ValueError("perplexity: the texts hold fewer than 2 tokens, nothing to predict")
    return math.exp(total / count)


def answer_perplexity(model, tokenizer, template, rows, cutoff_len: int = 1024, batch_size: int = 4) -> float:
    """exp(NLL per token) of the *answers* of SFT-style rows (messages ending with the answer), each
    encoded with `template` as the sft stage encodes it: only the tokens with a label count. This is
    how well the model predicts chat answers in its own format (a check for forgetting after pt)."""
    from kit import templates

    encoded = [templates.encode(template, tokenizer, row["messages"], system=row.get("system") or None,
                                tools=row.get("tools") or None, cutoff_len=cutoff_len) for row in rows]
    total, count = scoring.label_nll(model, tokenizer, [{"input_ids": ids, "labels": labels} for ids, labels in encoded],
                                     batch_size)
    if count == 0:
        raise ValueError("answer_perplexity: no answer token to score (rows must end with an answer)")
    return math.exp(total / count)
