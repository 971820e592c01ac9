"""The stage plug-in seam: what `kit.train.run` hands to a stage, and the stage registry.

Every training stage (LLaMA-Factory's names: sft, pt, rm, dpo, kto; plus grpo) lives in its own module
`kit.train.<stage>` and provides one function

    build_trainer(ctx: StageContext) -> transformers.Trainer

which `kit.train.run` calls after it has loaded the model, tokenizer, template and canonical
datasets (kit.data rows) and prepared the common TrainingArguments keyword arguments. A stage turns
rows into features its trainer understands (e.g. `kit.templates.encode` for sft, `encode_pair` for
dpo), builds the trainer (transformers or TRL) and returns it; `run` then trains, saves and logs.

A stage module registers itself at import time with `register_stage("dpo", build_trainer)`, or just
defines a module-level `build_trainer`; `get_stage(name)` imports `kit.train.<name>` lazily, so
importing kit.train never imports TRL.

Not here: loading (kit.train.runner), configs (kit.train.config), monitoring (kit.train.monitor).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from kit.data.formats import TRAIN_STAGES as STAGES  # LLaMA-Factory's names; grpo is the kit's own

_REGISTRY: dict[str, Callable[["StageContext"], Any]] = {}


@dataclass
class StageContext:
    """Everything a stage needs to build its trainer.

    config          the kit.train.TrainConfig of this run (read stage options from it: cutoff_len,
                    train_on_prompt, mask_history, pref_beta, pref_loss, packing, ...).
    model           the model to train: already wrapped with peft for lora (a PeftModel), already
                    frozen for freeze, quantized for QLoRA; on its device.
    tokenizer       its tokenizer (pad_token set).
    template        the kit.templates.Template object for config.template.
    train_dataset   canonical rows (datasets.Dataset, columns as in docs/architecture.md).
    eval_dataset    canonical rows split off by val_size / eval_dataset, or None.
    callbacks       transformers TrainerCallbacks the runner wants attached (monitoring, abort):
                    pass them to the trainer's `callbacks=`.
    training_args   keyword arguments for transformers.TrainingArguments (or a TRL *Config built on
                    it): output_dir, learning_rate, max_steps, num_train_epochs,
                    per_device_train_batch_size, per_device_eval_batch_size,
                    gradient_accumulation_steps, lr_scheduler_type, warmup_ratio/warmup_steps,
                    max_grad_norm, weight_decay, logging_steps, save_steps, eval_steps,
                    eval_strategy, save_strategy, seed, report_to, bf16, fp16,
                    gradient_checkpointing, neftune_noise_alpha, optim (+ optim_args for GaLore),
                    remove_unused_columns=False, use_cpu, ... Add stage-specific keys on a copy.
    ref_model       a frozen reference model for dpo/kto/grpo when the config asks for one
                    (None means "the trainer makes its own" or "adapter disabled" for LoRA).
    peft_config     the peft LoraConfig already applied to `model` (None unless lora); for
                    information, do not apply it twice.
    """

    config: Any
    model: Any
    tokenizer: Any
    template: Any
    train_dataset: Any
    eval_dataset: Any = None
    callbacks: list = field(default_factory=list)
    training_args: dict = field(default_factory=dict)
    ref_model: Any = None
    peft_config: Any = None

    def make_training_arguments(self, cls=None, **extra):
        """`cls(**training_args, **extra)`: cls defaults to transformers.TrainingArguments; pass a
        TRL config class (DPOConfig, ...) to get its extra fields. Keys `extra` names win."""
        if cls is None:
            from transformers import TrainingArguments as cls  # noqa: N813
        kwargs = {**self.training_args, **extra}
        names = {f.name for f in fields(cls)}
        # the kit switches checkpointing on the model itself (kit.train.accel, before the trainer
        # exists); the trainer's own switch stays off unless asked for. TRL's configs default it to
        # True; transformers >= 5.24 names it activation_checkpointing and warns about the old name.
        wanted = bool(kwargs.pop("gradient_checkpointing", False) or kwargs.pop("activation_checkpointing", False))
        if "activation_checkpointing" in names:
            kwargs["activation_checkpointing"] = wanted
        elif "gradient_checkpointing" in names:
            kwargs["gradient_checkpointing"] = wanted
        return cls(**kwargs)


def register_stage(name: str, build_trainer: Callable[[StageContext], Any]) -> None:
    """Register `build_trainer(ctx) -> Trainer` for a stage name (overwrites an earlier one)."""
    _REGISTRY[name] = build_trainer


def get_stage(name: str) -> Callable[[StageContext], Any]:
    """The stage's build_trainer, importing `kit.train.<name>` on first use."""
    if name not in _REGISTRY:
        if name not in STAGES:
            raise ValueError(f"stage {name!r} is not known; choose one of {', '.join(STAGES)}")
        module = importlib.import_module(f"kit.train.{name}")
        if name not in _REGISTRY:
            builder = getattr(module, "build_trainer", None)
            if builder is None:
                raise ValueError(f"kit.train.{name} defines no build_trainer(ctx) and registered no stage")
            _REGISTRY[name] = builder
    return _REGISTRY[name]
