"""Stage `sft`: supervised fine-tuning on canonical rows, encoded by kit.templates.encode.

Each row's messages go through `kit.templates.encode(template, tokenizer, messages, system, tools,
cutoff_len, train_on_prompt, mask_history)`, the same function the label previewer uses, so the
tokens a learner sees highlighted as "trained on" are exactly the ones with a label here. Training is
a plain transformers Trainer with next-token cross-entropy on the labelled tokens.

`packing=True` concatenates encoded examples (greedily, in order) into sequences of at most
cutoff_len tokens, like LLaMA-Factory's non-neat packing: examples in one sequence can attend to each
other (and positions run on across them), so the model trains on a slightly different task: cheap in
compute (no padding), not free in quality. `neat_packing=True` packs the same way but each example
attends only to itself (kit.train.accel: segment ids, restarting position ids, block-diagonal mask).
Not here: multimodal rows.
"""
from __future__ import annotations

import warnings

from kit.templates.encode import IGNORE_INDEX
from kit.train.context import StageContext, register_stage


def encode_rows(rows, tokenizer, template, config) -> dict:
    """{"input_ids": [...], "labels": [...]} for every row; rows left with no labelled token (the
    answer fell beyond cutoff_len) are reported in a warning and left out."""
    from kit import templates

    input_ids, labels, skipped = [], [], []
    truncated_rows, tokens_lost = 0, 0
    for index, row in enumerate(rows):
        kwargs = dict(system=row.get("system") or None, tools=row.get("tools") or None,
                      train_on_prompt=config.train_on_prompt, mask_history=config.mask_history)
        # encode in full first (same ids when it fits), so every token cut by cutoff_len is counted
        ids, labs = templates.encode(template, tokenizer, row["messages"], cutoff_len=10**9, **kwargs)
        if len(ids) > config.cutoff_len:
            full = len(ids)
            ids, labs = templates.encode(template, tokenizer, row["messages"], cutoff_len=config.cutoff_len, **kwargs)
            truncated_rows += 1
            tokens_lost += full - len(ids)
        if all(label == IGNORE_INDEX for label in labs):
            skipped.append(index)
            continue
        input_ids.append(list(ids))
        labels.append(list(labs))
    if skipped:
        warnings.warn(f"sft: {len(skipped)} row(s) have no answer token left after cutoff_len="
                      f"{config.cutoff_len} and are not trained on: rows {skipped[:20]}"
                      f"{' ...' if len(skipped) > 20 else ''}; raise cutoff_len to keep them", UserWarning)
    if truncated_rows:  # reported once per encoding pass (train, eval), never silently; printed like kit.data's report
        print(f"[kit.train] sft: cutoff_len={config.cutoff_len} cut {truncated_rows} of {len(rows)} row(s), "
              f"{tokens_lost} token(s) lost in all (prompt and answer are cut turn by turn, as LLaMA-Factory "
              "does); raise cutoff_len to keep them")
    if not input_ids:
        raise ValueError(f"sft: no row has an answer token within cutoff_len={config.cutoff_len}")
    return {"input_ids": input_ids, "labels": labels}


def pack(features: dict, cutoff_len: int) -> dict:
    """Greedily concatenate examples into sequences of at most cutoff_len tokens (order kept)."""
    packed_ids, packed_labels, cur_ids, cur_labels = [], [], [], []
    for ids, labs in zip(features["input_ids"], features["labels"]):
        if cur_ids and len(cur_ids) + len(ids) > cutoff_len:
            packed_ids.append(cur_ids)
            packed_labels.append(cur_labels)
            cur_ids, cur_labels = [], []
        cur_ids = cur_ids + ids
        cur_labels = cur_labels + labs
    if cur_ids:
        packed_ids.append(cur_ids)
        packed_labels.append(cur_labels)
    return {"input_ids": packed_ids, "labels": packed_labels}


def to_features(rows, ctx: StageContext):
    """Canonical rows -> a datasets.Dataset of input_ids / labels / attention_mask."""
    from datasets import Dataset

    from kit.train import accel

    features = encode_rows(rows, ctx.tokenizer, ctx.template, ctx.config)
    if ctx.config.neat_packing:
        return Dataset.from_dict(accel.pack_neat(features, ctx.config.cutoff_len))
    if accel.packing_on(ctx.config):
        features = pack(features, ctx.config.cutoff_len)
    features["attention_mask"] = [[1] * len(ids) for ids in features["input_ids"]]
    return Dataset.from_dict(features)


def build_trainer(ctx: StageContext):
    from kit.train import accel

    train = to_features(ctx.train_dataset, ctx)
    evaluation = to_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
    return accel.causal_lm_trainer(ctx, train, evaluation)


register_stage("sft", build_trainer)
