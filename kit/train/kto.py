"""Stage `kto`: learning from answers marked good or bad, one at a time (no pairs needed).

KTO (Ethayarajh et al. 2024, arXiv:2402.01306) scores an answer by its implied reward
r = β·(log π(y|x) - log π_ref(y|x)) and compares it with a reference point z₀ ≈ KL(π‖π_ref), estimated
on mismatched (prompt, answer) pairs of the same batch:

    desirable   loss = λ_D·(1 - σ(r - z₀))        λ_D = kto_chosen_weight
    undesirable loss = λ_U·(1 - σ(z₀ - r))        λ_U = kto_rejected_weight

`trl.KTOTrainer` runs it (β = pref_beta) and logs rewards/chosen, rewards/rejected, rewards/margins and
`kl` (the z₀ estimate: the method's reference-model divergence). The KL estimate needs
per_device_train_batch_size >= 2 (the mismatched answers come from the same batch).
Rows are canonical KTO rows (messages = prompt + judged answer, kto_label) encoded with OUR template.
Not here: pref_ftx for KTO (LLaMA-Factory adds an SFT term; TRL 1.x's KTO has none), unpaired APO.
"""
from __future__ import annotations

import warnings

from kit.train.context import StageContext, register_stage


def kto_features(rows, ctx: StageContext):
    """KTO rows -> prompt_ids / completion_ids / label (what KTOTrainer's collator reads)."""
    from datasets import Dataset

    from kit import templates

    cols = {"prompt_ids": [], "completion_ids": [], "label": []}
    skipped = []
    for index, row in enumerate(rows):
        label = row.get("kto_label")
        messages = row.get("messages") or []
        if not isinstance(label, bool):
            raise ValueError(f"stage 'kto': row {index} has kto_label={label!r}; stage 'kto' needs rows with "  # noqa: TRY004
                             f"kto_label true/false (a dataset mapping kto_tag, e.g. kto_en_demo, loaded "
                             f"with kit.data.load_dataset(..., stage='kto'))")
        if not messages or messages[-1].get("role") not in ("assistant", "function"):
            raise ValueError(f"stage 'kto': row {index} does not end with the judged answer "
                             f"(last role: {messages[-1].get('role') if messages else None!r})")
        pair = templates.encode_pair(ctx.template, ctx.tokenizer, messages[:-1], messages[-1], messages[-1],
                                     system=row.get("system") or None, tools=row.get("tools") or None,
                                     cutoff_len=ctx.config.cutoff_len)
        if not pair["chosen_ids"]:
            skipped.append(index)
            continue
        cols["prompt_ids"].append(list(pair["prompt_ids"]))
        cols["completion_ids"].append(list(pair["chosen_ids"]))
        cols["label"].append(label)
    if skipped:
        warnings.warn(f"kto: {len(skipped)} row(s) keep no answer token within cutoff_len="
                      f"{ctx.config.cutoff_len} and are not trained on: rows {skipped[:20]}", UserWarning)
    if not cols["label"]:
        raise ValueError(f"kto: no row has answer tokens within cutoff_len={ctx.config.cutoff_len}")
    return Dataset.from_dict(cols)


def _trainer_class():
    from trl import KTOTrainer

    class PreTokenizedKTOTrainer(KTOTrainer):
        """KTOTrainer over our template's token ids; adds the KL (mismatched) answers as TRL does:
        within each batch of n rows, row i gets the answer of row i-1 (row 0 that of row n-1)."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in dataset.column_names:
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if self.calculate_KL:
                def add_kl(batch):
                    batch["KL_completion_ids"] = [batch["completion_ids"][-1]] + batch["completion_ids"][:-1]
                    return batch

                dataset = dataset.map(add_kl, batched=True, batch_size=args.per_device_train_batch_size)
            return dataset

    return PreTokenizedKTOTrainer


def build_trainer(ctx: StageContext):
    from trl import KTOConfig

    from kit.train.dpo import reference_model

    config = ctx.config
    if config.pref_ftx > 0:
        warnings.warn(f"pref_ftx = {config.pref_ftx} is not used by stage kto (TRL 1.x's KTO has no SFT term)",
                      UserWarning)
    if ctx.training_args.get("per_device_train_batch_size", 1) < 2:
        raise ValueError("field 'per_device_train_batch_size' = 1 is not allowed for stage kto: KTO estimates "
                         "its KL reference point from the other answers of the same batch; use >= 2")
    args = ctx.make_training_arguments(
        KTOConfig, max_length=config.cutoff_len, beta=config.pref_beta,
        desirable_weight=config.kto_chosen_weight, undesirable_weight=config.kto_rejected_weight,
        remove_unused_columns=False)
    train = kto_features(ctx.train_dataset, ctx)
    evaluation = kto_features(ctx.eval_dataset, ctx) if ctx.eval_dataset is not None else None
    return _trainer_class()(model=ctx.model, ref_model=reference_model(ctx), args=args, train_dataset=train,
                            eval_dataset=evaluation, processing_class=ctx.tokenizer, callbacks=ctx.callbacks)


register_stage("kto", build_trainer)
