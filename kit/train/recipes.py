"""Ready-made training configs that lessons share (the same settings reach the same output_dir,
so `kit.train.ensure_run(recipe())` reuses a run an earlier lesson already made).

    IDENTITY                 the name and author lesson 06 teaches the built-in model
    identity_sft(quick)      LoRA SFT of the built-in model on identity (+ some alpaca_en_demo rows)

Quick mode (KIT_QUICK=1) trains on the first 24 rows of each dataset (the identity rows asking
"who are you" come first) for 16 steps of 4 examples at cutoff 128: about 1-2 minutes on a laptop
CPU (~200 tokens/s), enough for the greedy answer to "Who are you?" to use the new name.
Full mode: every row, 3 epochs, cutoff 512.
Not here: running them (kit.train.run / ensure_run).
"""
from __future__ import annotations

from kit import env
from kit.train.config import TrainConfig

# "Kestrel": a name the built-in model never calls itself (it says SmolLM / "an AI assistant").
IDENTITY = {"name": "Kestrel", "author": "Harbor Lab"}


def identity_sft(quick: bool | None = None, **changes) -> TrainConfig:
    """Lesson 06's run: LoRA (rank 8, all linear layers) on identity + alpaca_en_demo.

    `quick` defaults to kit.env.is_quick(); `changes` override fields (e.g. output_dir=...)."""
    from kit import data, models

    quick = env.is_quick() if quick is None else quick
    dataset_dir, identity = data.make_identity_dataset(IDENTITY["name"], IDENTITY["author"])
    mode = "quick" if quick else "full"
    settings = dict(
        model_name_or_path=models.BUILTIN,
        template=models.BUILTIN_TEMPLATE,
        dataset=f"{identity},alpaca_en_demo",
        dataset_dir=str(dataset_dir),
        finetuning_type="lora",
        lora_rank=8,
        lora_alpha=16,
        lora_target="all",
        cutoff_len=128 if quick else 512,
        max_samples=24 if quick else None,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1 if quick else 2,
        learning_rate=2e-3 if quick else 5e-4,
        max_steps=16 if quick else -1,
        num_train_epochs=3.0,
        lr_scheduler_type="cosine",
        warmup_ratio=0.0 if quick else 0.05,
        logging_steps=1 if quick else 5,
        save_steps=8 if quick else 50,
        seed=42,
        report_to="tensorboard",
        output_dir=str(env.work_dir() / "saves" / models.BUILTIN / "lora" / f"identity_sft_{mode}"),
    )
    settings.update(changes)
    return TrainConfig(**settings)
