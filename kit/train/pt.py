"""Stage `pt`: continued pre-training on plain text (next-token prediction on every token).

Rows are canonical pre-training rows, `[{"role": "assistant", "content": text}]`. Each text becomes
`kit.templates.encode_pretrain(tokenizer, text)` = the tokenizer's own special tokens + text + EOS,
with no chat template and no mask: every token is a label. As in LLaMA-Factory's pre-training
processor, the texts are then *packed*: concatenated in order into one stream and cut into blocks of
cutoff_len tokens, so no compute is spent on padding (`packing` None, the default, means on for pt,
as in LLaMA-Factory; `packing: false` gives one sequence per text, cut at cutoff_len). Unlike
LLaMA-Factory, the last, shorter block is kept (nothing silently dropped).
A block may hold the end of one text and the start of the next (separated by EOS), and attention
crosses that boundary: the cheap, standard way. `neat_packing: true` instead packs whole texts
(each cut at cutoff_len) into rows that each text attends to alone (kit.train.accel).

    blocks = pack_texts([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4)   # [[1,2,3,4], [5,6,7,8], [9]]
    padding_share([[1, 2, 3], [4, 5]])   # 1/6: one pad token out of 6 positions in a batch of 2

`kit.train.diagnostics.perplexity` measures the result on held-out text.
Not here: streaming corpora larger than memory, tokenizer training.
"""
from __future__ import annotations

from kit.train.context import StageContext, register_stage


def pt_texts(rows) -> list[str]:
    """The text of each pre-training row; a row of another shape is a clear error naming it."""
    texts = []
    for index, row in enumerate(rows):
        messages = row.get("messages") or []
        if len(messages) != 1 or not isinstance(messages[0].get("content"), str):
            raise ValueError(f"stage 'pt': row {index} is not a plain-text row (messages={messages!r:.80}); "
                             "load text with kit.data.load_dataset(..., stage='pt'), e.g. c4_demo")
        texts.append(messages[0]["content"])
    return texts


def encode_texts(texts, tokenizer, max_len: int = 1_000_000) -> list[list[int]]:
    """Token ids of each text: special tokens + text + EOS (kit.templates.encode_pretrain)."""
    from kit import templates

    return [templates.encode_pretrain(tokenizer, text, cutoff_len=max_len)[0] for text in texts]


def pack_texts(token_lists: list[list[int]], block_size: int) -> list[list[int]]:
    """Concatenate token lists in order and cut the stream into blocks of `block_size` (the last one
    may be shorter)."""
    if block_size < 1:
        raise ValueError(f"block_size (cutoff_len) must be >= 1, got {block_size}")
    stream = [token for ids in token_lists for token in ids]
    return [stream[i:i + block_size] for i in range(0, len(stream), block_size)]


def truncate_texts(token_lists: list[list[int]], block_size: int) -> list[list[int]]:
    """Without packing: one sequence per text, cut at block_size (the rest is lost)."""
    return [ids[:block_size] for ids in token_lists]


def padding_share(sequences: list[list[int]], batch_size: int | None = None) -> float:
    """Share of positions that are padding when `sequences` are batched in order (`batch_size`
    sequences per batch, each padded to its batch's longest; None = one batch)."""
    batch_size = batch_size or max(len(sequences), 1)
    total = pad = 0
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start:start + batch_size]
        width = max((len(s) for s in batch), default=0)
        total += width * len(batch)
        pad += sum(width - len(s) for s in batch)
    return pad / total if total else 0.0


def pt_features(rows, ctx: StageContext):
    """A datasets.Dataset of packed blocks (input_ids = labels, attention_mask)."""
    from datasets import Dataset

    from kit.train import accel

    token_lists = encode_texts(pt_texts(rows), ctx.tokenizer)
    if ctx.config.neat_packing:
        token_lists = truncate_texts(token_lists, ctx.config.cutoff_len)
        return Dataset.from_dict(accel.pack_neat({"input_ids": token_lists, "labels": token_lists},
                                                 ctx.config.cutoff_len))
    if accel.packing_on(ctx.config):
        blocks = pack_texts(token_lists, ctx.config.cutoff_len)
    else:
        blocks = truncate_texts(token_lists, ctx.config.cutoff_len)
    if not blocks:
        raise ValueError("stage 'pt': the dataset holds no text")
    return Dataset.from_dict({"input_ids": blocks, "labels": [list(b) for b in blocks],
                              "attention_mask": [[1] * len(b) for b in blocks]})


def build_trainer(ctx: StageContext):
    from kit.train import accel

    train = pt_features(ctx.train_dataset, ctx)
    evaluation = pt_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
    return accel.causal_lm_trainer(ctx, train, evaluation)


register_stage("pt", build_trainer)
