"""One way to score a model on token sequences: batched next-token log-probabilities and NLL.

    logps = kit.scoring.token_logps(model, tokenizer, [ids1, ids2])      # log p(ids[t+1] | ids[:t+1])
    nll, n = kit.scoring.label_nll(model, tokenizer, [{"input_ids": ids, "labels": labels}, ...])
    with kit.scoring.adapter_disabled(model):                             # a peft model's base
        ...

The padding rule, the only one in the kit: a batch is padded on the right by transformers'
`DataCollatorForSeq2Seq` (input_ids with the tokenizer's pad token, labels with IGNORE_INDEX = -100,
attention_mask 0 on padding). Causal attention never looks right, so padding changes no number on a
real token (the pad id is irrelevant); padded positions are then dropped. A tokenizer without a pad
token gets EOS as its pad token, as kit.models.load_tokenizer does.

Units: log-probabilities and NLL in nats (natural log). Position t of `token_logps(...)[i]` scores
token t+1 of sequence i (the first token has no context and no score).
Not here: generation (kit.chat), reward-head scores (kit.train.rm.score uses `padded_batches`),
metrics built from these numbers (kit.evaluate, kit.train.diagnostics).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from kit.templates.encode import IGNORE_INDEX


@contextlib.contextmanager
def adapter_disabled(model, disable: bool = True):
    """Run the block with a peft model's adapter switched off (its base model); disable=False: as is.

    A model without an adapter is an error when disable=True (there is nothing to switch off)."""
    if not disable:
        yield model
        return
    if not hasattr(model, "disable_adapter"):
        raise ValueError("disable_adapter=True needs a peft.PeftModel (the model has no adapter to switch off)")
    with model.disable_adapter():
        yield model


@contextlib.contextmanager
def eval_mode(model):
    """no_grad and eval() for the block; the model's training flag is restored afterwards."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def device_of(model):
    return next(model.parameters()).device


def padded_batches(tokenizer, features: list[dict], batch_size: int, device=None) -> Iterator[dict]:
    """Batches of `features` ({"input_ids": [...], optional "labels": [...]}) padded by the one rule:
    dicts of tensors input_ids, attention_mask (and labels), moved to `device`."""
    from transformers import DataCollatorForSeq2Seq

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    for start in range(0, len(features), batch_size):
        chunk = [{k: v for k, v in f.items() if k in ("input_ids", "labels")} for f in features[start:start + batch_size]]
        side, tokenizer.padding_side = tokenizer.padding_side, "right"
        try:
            batch = collator(chunk)
        finally:
            tokenizer.padding_side = side
        if batch.get("labels") is None:
            batch.pop("labels", None)
        yield {k: v.to(device) if device is not None else v for k, v in batch.items()}


def batch_logits(model, tokenizer, features: list[dict], batch_size: int = 4,
                 disable_adapter: bool = False) -> Iterator[tuple[dict, object]]:
    """(padded batch, fp32 logits of shape (batch, seq, vocab)) for each batch, in eval mode."""
    with eval_mode(model), adapter_disabled(model, disable_adapter):
        for batch in padded_batches(tokenizer, features, batch_size, device_of(model)):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            yield batch, logits


def token_logps(model, tokenizer, sequences: list[list[int]], batch_size: int = 4,
                disable_adapter: bool = False) -> list:
    """For each sequence a 1-D tensor of len(seq) - 1 values: log p(seq[t+1] | seq[:t+1]) in nats."""
    import torch

    out = []
    features = [{"input_ids": list(s)} for s in sequences]
    for batch, logits in batch_logits(model, tokenizer, features, batch_size, disable_adapter):
        ids = batch["input_ids"]
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        lengths = batch["attention_mask"].sum(-1).tolist()
        out += [logp[row, :n - 1].cpu() for row, n in enumerate(lengths)]
    return out


def label_nll(model, tokenizer, features: list[dict], batch_size: int = 4,
              disable_adapter: bool = False) -> tuple[float, int]:
    """(summed NLL in nats, number of scored tokens) of the labelled tokens: token t+1 counts where
    labels[t+1] != IGNORE_INDEX, the target being that label (as the Trainer's causal-LM loss)."""
    import torch

    total, count = 0.0, 0
    for batch, logits in batch_logits(model, tokenizer, features, batch_size, disable_adapter):
        labels = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels,
                                                ignore_index=IGNORE_INDEX, reduction="sum")
        total += float(nll)
        count += int((labels != IGNORE_INDEX).sum())
    return total, count
