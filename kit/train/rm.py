"""Stage `rm`: a reward model trained on preference pairs (the first half of RLHF).

A reward model reads prompt + answer and returns one number. It is the language model with its
next-token head replaced by a linear "score" head (hidden_size -> 1) read at the last token, trained
with the Bradley-Terry pairwise loss (Ouyang et al. 2022, arXiv:2203.02155, eq. 1):

    loss = -log σ(r(x, y_chosen) - r(x, y_rejected))

so only the *difference* of two scores matters. `trl.RewardTrainer` runs it; it logs accuracy (share
of pairs with r_chosen > r_rejected), margin (mean r_chosen - r_rejected) and min/mean/max reward.

`kit.train.run` hands us a causal LM (already wrapped for LoRA/QLoRA, frozen for freeze);
`as_reward_model` turns it into `AutoModelForSequenceClassification` with num_labels=1, sharing the
body's weights. For LoRA the fresh adapter is taken off and put back on with task_type SEQ_CLS, so the
saved adapter also holds the score head (peft's modules_to_save) and `load_reward_model` can rebuild
it on the base model. Pairs are encoded with OUR template (kit.templates.encode_pair).
Not here: LLaMA-Factory's value-head checkpoint format, reward models served over an API.
"""
from __future__ import annotations

import copy
from pathlib import Path

from kit.train.context import StageContext, register_stage


def seq_cls_from_causal_lm(causal_lm, pad_token_id: int | None):
    """A `...ForSequenceClassification` (num_labels=1) sharing `causal_lm`'s body; the score head is new
    (normal init, std = initializer_range). The causal LM's output head is left behind."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(causal_lm.config)
    config.num_labels = 1
    config.pad_token_id = pad_token_id
    config.problem_type = "regression"
    with torch.device("meta"):
        seq = AutoModelForSequenceClassification.from_config(config)
    prefix = causal_lm.base_model_prefix
    body = getattr(causal_lm, prefix)
    setattr(seq, prefix, body)
    if not hasattr(seq, "score"):
        raise ValueError(f"{type(seq).__name__} has no 'score' head; stage rm supports decoder models whose "
                         f"sequence-classification class names its head 'score' (Llama, Qwen, Mistral, ...)")
    embed = body.get_input_embeddings().weight
    head = torch.nn.Linear(config.hidden_size, 1, bias=False, device=embed.device, dtype=embed.dtype)
    torch.nn.init.normal_(head.weight, std=getattr(config, "initializer_range", 0.02))
    seq.score = head
    for attr in ("is_loaded_in_4bit", "is_loaded_in_8bit", "quantization_method", "hf_quantizer"):
        if hasattr(causal_lm, attr):
            setattr(seq, attr, getattr(causal_lm, attr))
    return seq


def as_reward_model(model, tokenizer, config=None):
    """The model to train as a reward model: a sequence-classification model is kept; a causal LM
    (plain or LoRA/QLoRA PeftModel) is converted (see module docstring)."""
    if getattr(model.config, "num_labels", None) == 1 and hasattr(model, "score"):
        return model
    from kit.train.dpo import is_peft

    if not is_peft(model):
        return seq_cls_from_causal_lm(model, tokenizer.pad_token_id)
    from peft import TaskType, get_peft_model

    lora = copy.deepcopy(model.peft_config["default"])
    if config is not None and getattr(config, "adapter_name_or_path", None):
        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            raise ValueError("stage rm with adapter_name_or_path on a quantized model is not supported: the "
                             "adapter cannot be merged into 4/8-bit weights; train the reward model without it")
        base = model.merge_and_unload()  # keep what the given adapter learned, in the weights
    else:
        base = model.unload()  # a fresh adapter (B = 0) changes nothing: take it off
    lora.task_type = TaskType.SEQ_CLS
    seq = seq_cls_from_causal_lm(base, tokenizer.pad_token_id)
    return get_peft_model(seq, lora)


def rm_features(rows, ctx: StageContext):
    """Ranking rows -> chosen_ids / rejected_ids (whole sequences: prompt + answer), RewardTrainer's format."""
    from datasets import Dataset

    from kit.train.dpo import encode_pairs

    cols = encode_pairs(rows, ctx.tokenizer, ctx.template, ctx.config.cutoff_len, stage="rm")
    return Dataset.from_dict({"chosen_ids": cols["chosen_input_ids"], "rejected_ids": cols["rejected_input_ids"]})


def build_trainer(ctx: StageContext):
    from trl import RewardConfig, RewardTrainer

    model = as_reward_model(ctx.model, ctx.tokenizer, ctx.config)
    args = ctx.make_training_arguments(RewardConfig, max_length=ctx.config.cutoff_len,
                                       remove_unused_columns=False, gradient_checkpointing=False)
    train = rm_features(ctx.train_dataset, ctx)
    evaluation = rm_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
    head_dtype = _score_head(model).weight.dtype
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                            processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    # TRL casts every trainable weight of a quantized model to bf16 (QLoRA's recipe); LoRA layers cast
    # their input, a plain score head does not, so it goes back to the dtype of the hidden states.
    for name, param in trainer.model.named_parameters():
        if ".score." in f".{name}" and param.dtype != head_dtype:
            param.data = param.data.to(head_dtype)
    return trainer


def _score_head(model):
    from kit.train.dpo import is_peft

    base = model.get_base_model() if is_peft(model) else model
    return base.score.modules_to_save["default"] if hasattr(base.score, "modules_to_save") else base.score


# ----------------------------------------------------------------------------- using a trained one

def load_reward_model(path: str, base_model: str | None = None, device: str | None = None,
                      quantization_bit: int | None = None):
    """(reward model, tokenizer) from an `rm` run's output_dir: a full model folder, or a LoRA adapter
    (its score head included) put on `base_model` (default: the adapter's own base)."""
    import json

    from kit import env, models

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"reward_model: {path} is not a folder (expected an rm run's output_dir)")
    device = env.pick_device(device)
    adapter_file = path / "adapter_config.json"
    if adapter_file.exists():
        from peft import PeftModel

        base_name = base_model or json.loads(adapter_file.read_text()).get("base_model_name_or_path")
        causal, tokenizer = models.load(base_name, device=device, quantization_bit=quantization_bit)
        seq = seq_cls_from_causal_lm(causal, tokenizer.pad_token_id)
        model = PeftModel.from_pretrained(seq, str(path))
    else:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not (path / "config.json").exists():
            raise FileNotFoundError(f"reward_model: {path} holds neither adapter_config.json nor config.json; "
                                    f"is it the output_dir of a finished stage='rm' run?")
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=env.pick_dtype(device),
            quantization_config=models.quantization_config(quantization_bit) if quantization_bit else None)
        if not quantization_bit:
            model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.requires_grad_(False)
    return model.eval(), tokenizer


def score(reward_model, tokenizer, template, conversations, system: str | None = None,
          cutoff_len: int = 1024, batch_size: int = 8) -> list[float]:
    """Reward of each conversation (messages ending with the answer), encoded with `template` exactly
    as the rm stage encodes training pairs."""
    import torch

    from kit import scoring, templates

    features = [{"input_ids": templates.encode(template, tokenizer, msgs, system=system, cutoff_len=cutoff_len)[0]}
                for msgs in conversations]
    out: list[float] = []
    with torch.no_grad():
        for batch in scoring.padded_batches(tokenizer, features, batch_size, scoring.device_of(reward_model)):
            out += reward_model(**batch).logits[:, 0].float().tolist()
    return out


register_stage("rm", build_trainer)
