"""Token ids and label masks for training, and prompt ids for generation.

    encode(template, tokenizer, messages, ...)   -> (input_ids, labels)   SFT / KTO rows
    encode_pair(template, tokenizer, messages, chosen, rejected, ...) -> dict   RM / DPO rows
    encode_prompt(template, tokenizer, messages, ...) -> input_ids        inference (ends with the
                                                                          generation prompt)
    encode_pretrain(tokenizer, text, ...)        -> (input_ids, labels)   pre-training, no mask

Labels are -100 (IGNORE_INDEX, ignored by the loss) on every prompt token unless train_on_prompt;
with mask_history only the last answer is trained. Each slot is tokenized on its own (as
LLaMA-Factory does), so special tokens such as <|im_end|> can never merge with their neighbours.

Truncation to cutoff_len follows LLaMA-Factory's rule, turn by turn: an answer shorter than half the
remaining budget is kept whole and the prompt is cut; otherwise both are cut in proportion. Prompts
and answers are cut at their end. With mask_history the last turn is fitted first.
Not here: packing, multimodal tokens, batching/padding (the training module's collator does that).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kit.templates.formatter import SpecialToken
from kit.templates.registry import get
from kit.templates.template import PROMPT_ROLES, RESPONSE_ROLES, Template, split_system

IGNORE_INDEX = -100  # labels with this value add nothing to the loss (PyTorch CrossEntropyLoss default)


@dataclass
class Encoding:
    """An encoded conversation, one entry per token (the previewer reads roles)."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

    def extend(self, ids, labels, roles):
        self.input_ids += ids
        self.labels += labels
        self.roles += roles


def _slot_ids(template: Template, tokenizer, slot) -> list[int]:
    text = template.special_text(slot, tokenizer) if isinstance(slot, SpecialToken) else slot
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _turns(template, tokenizer, segments):
    """Segments -> [(prompt_ids, prompt_roles, answer_ids, answer_roles), ...] by turn."""
    turns: dict[int, list] = {}
    for seg in segments:
        slot = turns.setdefault(seg.turn, [[], [], [], []])
        offset = 0 if seg.side == "prompt" else 2
        for s in seg.slots:
            ids = _slot_ids(template, tokenizer, s)
            slot[offset] += ids
            slot[offset + 1] += [seg.role] * len(ids)
    return [tuple(turns[t]) for t in sorted(turns)]


def fit_lengths(source_len: int, target_len: int, budget: int) -> tuple[int, int]:
    """How many prompt and answer tokens to keep within `budget` (LLaMA-Factory's infer_seqlen rule)."""
    if target_len * 2 < budget:
        max_target = budget  # a short answer is kept whole
    elif source_len * 2 < budget:
        max_target = budget - source_len  # a short prompt is kept whole
    else:
        max_target = int(budget * target_len / (source_len + target_len))  # cut both in proportion
    new_target = min(max_target, target_len)
    new_source = min(max(budget - new_target, 0), source_len)
    return new_source, new_target


def _eos_id(template: Template, tokenizer) -> int:
    ids = tokenizer.encode(template.special_text(SpecialToken("eos"), tokenizer), add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"template {template.name!r}: EOS {template.special_text(SpecialToken('eos'), tokenizer)!r} "
                         "is not one token of this tokenizer (run kit.templates.fix_tokenizer first)")
    return ids[0]


def encode_tokens(template, tokenizer, messages, system=None, tools=None, cutoff_len=1024,
                  train_on_prompt=False, mask_history=False) -> Encoding:
    """Like `encode` but keeps each token's role (for the previewer)."""
    template = get(template)
    if cutoff_len is None or cutoff_len < 1:
        raise ValueError(f"cutoff_len must be a positive number of tokens, got {cutoff_len!r}")
    if train_on_prompt and template.efficient_eos:
        raise ValueError(f"template {template.name!r} uses efficient_eos and does not support train_on_prompt")
    msgs, system = split_system(messages, system)
    if not msgs or msgs[-1].get("role") not in RESPONSE_ROLES:
        raise ValueError("encode: messages must end with an assistant/function answer "
                         f"(last role: {msgs[-1].get('role') if msgs else None!r}); use encode_prompt for a prompt")
    turns = _turns(template, tokenizer, template.segments(msgs, system, tools, drop_history_thoughts=mask_history))
    eos = _eos_id(template, tokenizer) if template.efficient_eos else None
    order = list(range(len(turns)))[::-1] if mask_history else list(range(len(turns)))
    budget = cutoff_len - (1 if eos is not None else 0)
    kept: dict[int, tuple] = {}
    for idx in order:
        if budget <= 0:
            break
        src, src_roles, tgt, tgt_roles = turns[idx]
        n_src, n_tgt = fit_lengths(len(src), len(tgt), budget)
        budget -= n_src + n_tgt
        kept[idx] = (src[:n_src], src_roles[:n_src], tgt[:n_tgt], tgt_roles[:n_tgt])
    out = Encoding()
    last = len(turns) - 1
    for idx in sorted(kept):
        src, src_roles, tgt, tgt_roles = kept[idx]
        answer_trained = not (mask_history and idx != last)
        src_labels = list(src) if train_on_prompt else [IGNORE_INDEX] * len(src)
        if eos is not None and idx != order[0] and src_labels:
            # efficient_eos: the end of the previous answer is learned at the start of the next prompt.
            # LLaMA-Factory's rule, kept token for token: every turn but the first one *fitted* gets it
            # (under mask_history the last turn is fitted first, so turn 0's first label is EOS too:
            # that label is never used, as the loss shifts labels by one).
            src_labels[0] = eos
        tgt_labels = list(tgt) if answer_trained else [IGNORE_INDEX] * len(tgt)
        out.extend(src + tgt, src_labels + tgt_labels, src_roles + tgt_roles)
    if eos is not None:
        out.extend([eos], [eos], ["eos"])
    return out


def encode(template, tokenizer, messages, system=None, tools=None, cutoff_len=1024,
           train_on_prompt=False, mask_history=False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a conversation; labels are -100 on masked (prompt) tokens.

    template: a name ("qwen") or a Template. messages: canonical messages (user/assistant/function/
    observation; a leading system message is accepted) ending with an answer. A single assistant
    message is pre-training text (nothing masked). tools: JSON text or a list of schemas.
    """
    enc = encode_tokens(template, tokenizer, messages, system, tools, cutoff_len, train_on_prompt, mask_history)
    return enc.input_ids, enc.labels


def encode_prompt(template, tokenizer, messages, system=None, tools=None) -> list[int]:
    """Ids of a conversation ending with a user/observation turn, up to and including the
    generation prompt (e.g. "<|im_start|>assistant\\n"); what `model.generate` should get."""
    template = get(template)
    msgs, system = split_system(messages, system)
    if not msgs or msgs[-1].get("role") not in PROMPT_ROLES:
        raise ValueError("encode_prompt: messages must end with a user/observation turn "
                         f"(last role: {msgs[-1].get('role') if msgs else None!r})")
    ids: list[int] = []
    for seg in template.segments(msgs, system, tools, add_generation_prompt=True):
        for s in seg.slots:
            ids += _slot_ids(template, tokenizer, s)
    return ids


def _as_message(answer, what: str) -> dict:
    if isinstance(answer, str):
        return {"role": "assistant", "content": answer}
    if isinstance(answer, dict) and answer.get("role") in RESPONSE_ROLES and isinstance(answer.get("content"), str):
        return {"role": answer["role"], "content": answer["content"]}
    raise ValueError(f"encode_pair: {what} must be a str or an assistant/function message, got {answer!r:.80}")


def encode_pair(template, tokenizer, messages, chosen, rejected, system=None, tools=None, cutoff_len=1024) -> dict:
    """A ranking row (RM / DPO): one prompt, two answers, sharing the prompt's ids.

    Returns prompt_ids, chosen_ids, rejected_ids (answers only) and, for trainers that want whole
    sequences, chosen_input_ids/chosen_labels and rejected_input_ids/rejected_labels (prompt masked).
    """
    template = get(template)
    msgs, system = split_system(messages, system)
    if not msgs or msgs[-1].get("role") not in PROMPT_ROLES:
        raise ValueError("encode_pair: messages (the prompt) must end with a user/observation turn")
    sides = []
    for answer, what in ((chosen, "chosen"), (rejected, "rejected")):
        turns = _turns(template, tokenizer, template.segments(msgs + [_as_message(answer, what)], system, tools,
                                                              drop_history_thoughts=True))
        prompt = [i for t in turns[:-1] for i in t[0] + t[2]] + turns[-1][0]
        sides.append((prompt, turns[-1][2]))
    (prompt_ids, chosen_ids), (_, rejected_ids) = sides
    if template.efficient_eos:
        eos = _eos_id(template, tokenizer)
        chosen_ids, rejected_ids = chosen_ids + [eos], rejected_ids + [eos]
    n_src, n_tgt = fit_lengths(len(prompt_ids), max(len(chosen_ids), len(rejected_ids)), cutoff_len)
    prompt_ids, chosen_ids, rejected_ids = prompt_ids[:n_src], chosen_ids[:n_tgt], rejected_ids[:n_tgt]
    masked = [IGNORE_INDEX] * len(prompt_ids)
    return {
        "prompt_ids": prompt_ids, "chosen_ids": chosen_ids, "rejected_ids": rejected_ids,
        "chosen_input_ids": prompt_ids + chosen_ids, "chosen_labels": masked + chosen_ids,
        "rejected_input_ids": prompt_ids + rejected_ids, "rejected_labels": masked + rejected_ids,
    }


def encode_pretrain(tokenizer, text: str, cutoff_len: int = 1024, add_eos: bool = True) -> tuple[list[int], list[int]]:
    """Pre-training text: the tokenizer's own special tokens (e.g. BOS) + text + EOS, nothing masked."""
    if not isinstance(text, str):
        raise TypeError(f"encode_pretrain: text must be a str, got {type(text).__name__}")
    ids = tokenizer.encode(text, add_special_tokens=True)
    if add_eos and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    ids = ids[:cutoff_len]
    return ids, list(ids)


def fix_tokenizer(template, tokenizer) -> int:
    """Make a tokenizer ready for training with `template` (in place), as LLaMA-Factory does:
    replace_eos sets EOS to stop_words[0]; a missing pad token becomes EOS; other stop words are
    added as special tokens. Returns how many tokens were added (resize the embeddings if > 0)."""
    template = get(template)
    added = 0
    stop_words = list(template.stop_words)
    if template.replace_eos:
        if tokenizer.eos_token != stop_words[0]:
            added += tokenizer.add_special_tokens({"eos_token": stop_words[0]})
        stop_words = stop_words[1:]
    if tokenizer.eos_token_id is None:
        added += tokenizer.add_special_tokens({"eos_token": "<|endoftext|>"})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    missing = [w for w in stop_words if len(tokenizer.encode(w, add_special_tokens=False)) != 1]
    if missing:
        added += tokenizer.add_tokens(missing, special_tokens=True)
    return added
