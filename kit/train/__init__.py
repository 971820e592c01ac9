"""Training: configs with LLaMA-Factory's argument names and `run(config)` for every stage.

    from kit import train
    config = train.TrainConfig(dataset="identity", output_dir=..., max_steps=20)
    result = train.run(config)              # or: python -m kit train config.yaml
    result = train.ensure_run(config)       # reuse an identical finished run
    config = train.recipes.identity_sft()   # lesson 06's run

Modules: config (TrainConfig), context (the stage plug-in seam), methods (full/freeze/LoRA),
runner (run, ensure_run, TrainResult), monitor (logs, plots, abort), sft (the SFT stage),
recipes (ready-made lesson configs), cli (`python -m kit train`). Stages pt/rm/dpo/kto/grpo live in
their own modules and load on first use.
"""
from kit.train.config import ConfigError, TrainConfig
from kit.train.context import StageContext, get_stage, register_stage

__all__ = ["ConfigError", "TrainConfig", "StageContext", "get_stage", "register_stage", "run",
           "ensure_run", "TrainResult", "recipes"]


def __getattr__(name):  # heavy parts (transformers, torch) load on first use
    if name in ("run", "ensure_run", "TrainResult"):
        from kit.train import runner

        return getattr(runner, name)
    if name in ("recipes", "monitor", "methods", "runner", "cli", "sft", "diagnostics", "pt", "rm", "dpo",
                "kto", "grpo"):
        import importlib

        return importlib.import_module(f"kit.train.{name}")
    raise AttributeError(f"module 'kit.train' has no attribute {name!r}")
