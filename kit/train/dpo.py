"""Stage `dpo`: learning from preference pairs without a reward model, through TRL 1.x trainers.

`pref_loss` picks the objective, with LLaMA-Factory's names:

    sigmoid   DPO (Rafailov et al. 2023, arXiv:2305.18290):
              loss = -log σ(β·[(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])
    hinge     SLiC-style hinge on the same log-ratio difference: max(0, 1 - β·Δ)
    ipo       IPO (Azar et al. 2023, arXiv:2310.12036): (Δ - 1/(2β))², Δ as above without β
    orpo      ORPO (Hong et al. 2024, arXiv:2403.07691): NLL(y_w) + β·(-log σ(log odds(y_w) - log odds(y_l)));
              no reference model
    simpo     SimPO (Meng et al. 2024, arXiv:2405.14734): -log σ(β/|y_w|·log π(y_w) - β/|y_l|·log π(y_l) - γ);
              length-normalised, no reference model, γ = simpo_gamma

sigmoid/hinge/ipo run on `trl.DPOTrainer`, orpo on `trl.experimental.orpo.ORPOTrainer`, simpo on
`trl.experimental.cpo.CPOTrainer(loss_type="simpo")`. `pref_beta` is β; `pref_ftx` adds ftx·NLL(y_w)
(TRL's extra "sft" loss for DPO, `cpo_alpha` for SimPO; ORPO always has it); `dpo_label_smoothing`
is cDPO's ε (sigmoid only).

Every pair is encoded with OUR template (`kit.templates.encode_pair`), not the tokenizer's chat
template: TRL gets token ids and its own tokenisation step is skipped (`_PreTokenized*` below).
The reference model is `ctx.ref_model`, else the `ref_model` path of the config, else a frozen copy of
the model before training (full/freeze) or the model with its LoRA adapter switched off (TRL).

TRL logs, per logging step: rewards/chosen, rewards/rejected (β·log-ratio to the reference; for
ORPO/SimPO β·mean log-prob), rewards/margins, rewards/accuracies (share of pairs with chosen > rejected);
`kit.train.diagnostics.preference_curves` reads them.
Not here: kto_pair (gone from TRL 1.x; use stage kto), multimodal pairs, padding-free batches.
"""
from __future__ import annotations

import copy
import warnings

from kit.train.context import StageContext, register_stage

DPO_LOSSES = ("sigmoid", "hinge", "ipo")
NO_REFERENCE_LOSSES = ("orpo", "simpo")
PREF_LOSSES = DPO_LOSSES + NO_REFERENCE_LOSSES


# ----------------------------------------------------------------------------- data

def _check_pair_row(row: dict, index: int, stage: str) -> None:
    for side in ("chosen", "rejected"):
        answer = row.get(side)
        if not isinstance(answer, dict) or not isinstance(answer.get("content"), str):
            raise ValueError(f"stage '{stage}': row {index} has no '{side}' answer ({side}={answer!r:.60}); "  # noqa: TRY004
                             f"stage '{stage}' needs ranking rows (a dataset with \"ranking\": true, e.g. "
                             f"dpo_en_demo), loaded with kit.data.load_dataset(..., stage='{stage}')")


def encode_pairs(rows, tokenizer, template, cutoff_len: int, stage: str = "dpo") -> dict:
    """Ranking rows -> columns of kit.templates.encode_pair's output (prompt_ids, chosen_ids,
    rejected_ids, chosen_input_ids, chosen_labels, ...). A pair whose chosen or rejected answer has
    no token left within cutoff_len is named in a warning and left out (never silently)."""
    from kit import templates

    columns: dict[str, list] = {}
    skipped = []
    for index, row in enumerate(rows):
        _check_pair_row(row, index, stage)
        pair = templates.encode_pair(template, tokenizer, row["messages"], row["chosen"], row["rejected"],
                                     system=row.get("system") or None, tools=row.get("tools") or None,
                                     cutoff_len=cutoff_len)
        if not pair["chosen_ids"] or not pair["rejected_ids"]:
            skipped.append(index)
            continue
        for key, value in pair.items():
            columns.setdefault(key, []).append(list(value))
    if skipped:
        warnings.warn(f"{stage}: {len(skipped)} pair(s) keep no answer token within cutoff_len={cutoff_len} "
                      f"and are not trained on: rows {skipped[:20]}; raise cutoff_len to keep them", UserWarning)
    if not columns:
        raise ValueError(f"{stage}: no pair has answer tokens within cutoff_len={cutoff_len}")
    return columns


def dpo_features(rows, ctx: StageContext, stage: str = "dpo"):
    """A datasets.Dataset with prompt_ids / chosen_ids / rejected_ids (what DPOTrainer's collator reads)."""
    from datasets import Dataset

    cols = encode_pairs(rows, ctx.tokenizer, ctx.template, ctx.config.cutoff_len, stage)
    return Dataset.from_dict({k: cols[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")})


def paired_features(rows, ctx: StageContext, stage: str = "dpo"):
    """Whole-sequence features for ORPO/CPO's collator: prompt_input_ids, chosen_input_ids,
    chosen_labels (prompt = -100), rejected_*, and their attention masks."""
    from datasets import Dataset

    cols = encode_pairs(rows, ctx.tokenizer, ctx.template, ctx.config.cutoff_len, stage)
    out = {"prompt_input_ids": cols["prompt_ids"],
           "prompt_attention_mask": [[1] * len(ids) for ids in cols["prompt_ids"]]}
    for side in ("chosen", "rejected"):
        out[f"{side}_input_ids"] = cols[f"{side}_input_ids"]
        out[f"{side}_attention_mask"] = [[1] * len(ids) for ids in cols[f"{side}_input_ids"]]
        out[f"{side}_labels"] = cols[f"{side}_labels"]
    return Dataset.from_dict(out)


# ----------------------------------------------------------------------------- reference model

def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def reference_model(ctx: StageContext):
    """The frozen reference policy: ctx.ref_model, the config's ref_model path, None for a LoRA model
    (the trainer switches the adapter off), else a frozen copy of the model before training."""
    config = ctx.config
    if ctx.ref_model is not None:
        return ctx.ref_model
    if getattr(config, "ref_model", None):
        from kit import models

        device = str(next(ctx.model.parameters()).device)
        ref, _ = models.load(config.ref_model, device=device,
                             quantization_bit=getattr(config, "ref_model_quantization_bit", None))
        if getattr(config, "ref_model_adapters", None):
            from peft import PeftModel

            ref = PeftModel.from_pretrained(ref, config.ref_model_adapters)
        ref.requires_grad_(False)
        return ref.eval()
    if is_peft(ctx.model):
        return None
    ref = copy.deepcopy(ctx.model)
    ref.requires_grad_(False)
    return ref.eval()


# ----------------------------------------------------------------------------- trainers

def _dpo_trainer_class():
    from trl import DPOTrainer

    class PreTokenizedDPOTrainer(DPOTrainer):
        """DPOTrainer that takes our template's token ids as they are (no chat template, no retokenising)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" in dataset.column_names:
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return PreTokenizedDPOTrainer


def _pre_tokenized(base):
    class PreTokenized(base):
        """ORPO/CPO trainer over features already encoded by kit.templates.encode_pair."""

        def tokenize_row(self, feature, model=None):
            if "chosen_input_ids" in feature:
                return {}  # the row already holds every feature the collator reads
            return super().tokenize_row(feature, model)

    PreTokenized.__name__ = f"PreTokenized{base.__name__}"
    return PreTokenized


def check_pref_loss(config) -> str:
    loss = config.pref_loss
    if loss == "kto_pair":
        raise ValueError("field 'pref_loss' = 'kto_pair' is not available: TRL 1.x removed it from DPO; "
                         "train KTO with stage='kto' and a KTO dataset (e.g. kto_en_demo)")
    if loss not in PREF_LOSSES:
        raise ValueError(f"field 'pref_loss' = {loss!r} is not allowed: expected one of {', '.join(PREF_LOSSES)}")
    return loss


def build_trainer(ctx: StageContext):
    config = ctx.config
    loss = check_pref_loss(config)
    common = {"max_length": config.cutoff_len, "beta": config.pref_beta, "remove_unused_columns": False}
    if loss in DPO_LOSSES:
        from trl import DPOConfig

        loss_type, weights = [loss], None
        if config.pref_ftx > 0:
            loss_type, weights = [loss, "sft"], [1.0, config.pref_ftx]
        if config.dpo_label_smoothing and loss != "sigmoid":
            raise ValueError(f"field 'dpo_label_smoothing' = {config.dpo_label_smoothing} only applies to "
                             f"pref_loss='sigmoid' (cDPO); got pref_loss={loss!r}")
        args = ctx.make_training_arguments(DPOConfig, loss_type=loss_type, loss_weights=weights,
                                           label_smoothing=config.dpo_label_smoothing, **common)
        train = dpo_features(ctx.train_dataset, ctx)
        evaluation = dpo_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
        return _dpo_trainer_class()(model=ctx.model, ref_model=reference_model(ctx), args=args,
                                    train_dataset=train, eval_dataset=evaluation,
                                    processing_class=ctx.tokenizer, callbacks=ctx.callbacks)
    if config.dpo_label_smoothing:
        raise ValueError(f"field 'dpo_label_smoothing' = {config.dpo_label_smoothing} only applies to "
                         f"pref_loss='sigmoid' (cDPO); got pref_loss={loss!r}")
    train = paired_features(ctx.train_dataset, ctx)
    evaluation = paired_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
    if loss == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        if config.pref_ftx > 0:
            warnings.warn("pref_ftx is not used with pref_loss='orpo': ORPO's loss already contains the "
                          "NLL (SFT) term on the chosen answer", UserWarning)
        args = ctx.make_training_arguments(ORPOConfig, **common)
        trainer_cls = _pre_tokenized(ORPOTrainer)
    else:  # simpo
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = ctx.make_training_arguments(CPOConfig, loss_type="simpo", simpo_gamma=config.simpo_gamma,
                                           cpo_alpha=config.pref_ftx, **common)
        trainer_cls = _pre_tokenized(CPOTrainer)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental.*")
        return trainer_cls(model=ctx.model, args=args, train_dataset=train, eval_dataset=evaluation,
                           processing_class=ctx.tokenizer, callbacks=ctx.callbacks)


register_stage("dpo", build_trainer)
