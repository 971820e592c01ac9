"""Logits of a few prompts, to check that two models (an adapter and its merge, a folder and its GGUF)
answer alike: one forward pass per prompt, no padding to get in the way.

    batch = prompt_batch(tokenizer, ["Who are you?"], template)
    max_abs_diff(logits_on(model_a, batch), logits_on(model_b, batch))

Not here: scoring with labels (kit.scoring), the export itself (kit.export, kit.gguf_export).
"""
from __future__ import annotations


def prompt_batch(tokenizer, prompts, template=None) -> list[list[int]]:
    from kit.chat import encode_prompt

    return [encode_prompt(tokenizer, [{"role": "user", "content": p}], template) for p in prompts]


def logits_on(model, batch: list[list[int]]):
    """Logits of each prompt (one forward pass each, no padding to get in the way): list of tensors."""
    import torch

    out = []
    with torch.no_grad():
        for ids in batch:
            tensor = torch.tensor([ids], device=model.device)
            logits = model(input_ids=tensor).logits[0]
            out.append(logits.cpu() if logits.dtype == torch.float64 else logits.float().cpu())
    return out


def max_abs_diff(left, right) -> float:
    return max(float((a.double() - b.double()).abs().max()) for a, b in zip(left, right))
