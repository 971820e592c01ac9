"""Rules the training board (kit.ui.train, kit.ui.studio) follows, as pure functions tested without widgets.

    preset_values("tiny run on CPU")      # {field: value} a quick preset fills in
    default_output_dir("smollm2-135m-instruct", "lora")   # saves/<model>/<method>/train_<time>, unused
    output_dir_problem(path, overwrite=False, resume=False)   # None, "busy" or "no_checkpoint"
    field_help(TrainConfig.field_map()["lora_rank"], lang=1)  # the Chinese help line

Presets follow LLaMA-Factory's examples scaled to a card: a tiny CPU run (the built-in model, a
handful of steps), a Colab T4 (16 GB, fp16, QLoRA 4-bit) and an A100 80GB (bf16, LoRA, long context).
Not here: widgets (kit.ui), training itself (kit.train.runner).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from kit.train.config import ConfigError, TrainConfig

# preset name -> the TrainConfig fields it sets (everything else keeps its current value)
PRESETS: dict[str, dict] = {
    "tiny run on CPU": dict(model_name_or_path="smollm2-135m-instruct", template="smollm2",
                            finetuning_type="lora", quantization_bit=None, dataset="identity", max_samples=16,
                            cutoff_len=128, per_device_train_batch_size=2, gradient_accumulation_steps=1,
                            max_steps=20, logging_steps=1, save_steps=10, learning_rate=5e-4, lora_rank=8,
                            report_to="none", bf16=False, fp16=False, pure_bf16=False,
                            disable_gradient_checkpointing=True),
    "Colab T4": dict(finetuning_type="lora", quantization_bit=4, cutoff_len=1024, per_device_train_batch_size=2,
                     gradient_accumulation_steps=8, max_steps=-1, num_train_epochs=3.0, logging_steps=5,
                     save_steps=100, learning_rate=1e-4, lora_rank=8, bf16=False, fp16=True, pure_bf16=False,
                     disable_gradient_checkpointing=False, report_to="tensorboard"),
    "A100 80GB": dict(finetuning_type="lora", quantization_bit=None, cutoff_len=4096, per_device_train_batch_size=4,
                      gradient_accumulation_steps=4, max_steps=-1, num_train_epochs=3.0, logging_steps=10,
                      save_steps=500, learning_rate=1e-4, lora_rank=16, bf16=True, fp16=False, pure_bf16=False,
                      flash_attn="auto", disable_gradient_checkpointing=False, report_to="tensorboard"),
}
# Chinese names shown for the presets (the keys stay the contract)
PRESET_LABELS_ZH = {"tiny run on CPU": "CPU 上的小试验", "Colab T4": "Colab T4", "A100 80GB": "A100 80GB"}


def preset_values(name: str) -> dict:
    """The {field: value} a preset sets; ConfigError naming the known presets for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r} is not known: expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def apply_preset(config: TrainConfig, name: str) -> TrainConfig:
    """A copy of `config` with the preset's fields set (the preset's values pass `validate()`'s ranges)."""
    return dataclasses.replace(config, **preset_values(name))


def default_output_dir(model_name_or_path: str, finetuning_type: str, root: str | Path | None = None,
                       now: float | None = None) -> str:
    """LLaMA-Factory's web-UI naming, saves/<model>/<method>/train_<date-time>, under `root` (default
    kit.env.work_dir()); a suffix -2, -3, ... when that folder exists, so two starts never collide."""
    if root is None:
        from kit import env

        root = env.work_dir()
    model = Path(str(model_name_or_path).rstrip("/")).name or "model"
    stamp = time.strftime("train_%Y-%m-%d-%H-%M-%S", time.localtime(now))
    base = Path(root) / "saves" / model / str(finetuning_type) / stamp
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{stamp}-{n}")
    return str(candidate)


def output_dir_problem(output_dir: str | Path, overwrite: bool, resume: bool) -> str | None:
    """Why a start with this output folder would fail, before any model is loaded: "busy" (it holds
    files and neither overwrite nor resume is ticked), "no_checkpoint" (resume without a checkpoint-N
    folder), or None (fine). Mirrors kit.train.runner.prepare_output_dir."""
    from kit.train.runner import last_checkpoint

    out = Path(output_dir)
    if resume:
        return None if out.is_dir() and last_checkpoint(out) else "no_checkpoint"
    if out.exists() and any(out.iterdir()) and not overwrite:
        return "busy"
    return None


def field_help(f: dataclasses.Field, lang: int = 0) -> str:
    """The help text of a settings field in the chosen language (0 English, 1 Chinese); Chinese falls
    back to English where a field has no "help_zh"."""
    english = f.metadata.get("help", "")
    return f.metadata.get("help_zh", english) if lang else english


def dataset_names(dataset_dir: str | Path = "data", stage: str | None = None) -> list[str]:
    """The names registered in dataset_info.json (what the dataset picker lists). With a stage, only
    the ones that stage can read: pairwise ("ranking") data for rm/dpo, the rest for the others
    (kto reads its own kto_tag datasets, which are not ranking). DataError names a missing/bad file."""
    from kit import env
    from kit.data.registry import read_dataset_info

    folder = Path(dataset_dir).expanduser()  # as kit.train.runner.resolve_dataset_dir, without importing trainers
    if not folder.is_absolute() and not (folder / "dataset_info.json").exists():
        folder = env.repo_root() / folder
    info = read_dataset_info(folder)
    if stage is None:
        return list(info)
    pairwise = stage in ("rm", "dpo")
    return [name for name, entry in info.items() if bool(entry.get("ranking", False)) == pairwise]


def load_trained(source: str, model_name_or_path: str, adapter_dir: str | None = None,
                 merged_dir: str | None = None, device: str | None = None):
    """(model, tokenizer) for the board's Evaluate and Chat tabs, as lessons 10-11 load them:
    "base" (the model alone), "adapter" (the base with the LoRA adapter of a run folder) or
    "merged" (an exported folder). FileNotFoundError says which folder is missing."""
    from kit import models

    if source == "base":
        return models.load(model_name_or_path, device=device)
    folder = adapter_dir if source == "adapter" else merged_dir
    marker = "adapter_config.json" if source == "adapter" else "config.json"
    if source not in ("adapter", "merged"):
        raise ValueError(f"source {source!r} is not one of base, adapter, merged")
    if not folder or not (Path(folder) / marker).is_file():
        raise FileNotFoundError(f"{source}: no {marker} in {folder!r}; train (adapter) or export (merged) first")
    if source == "merged":
        return models.load(folder, device=device)
    from peft import PeftModel

    model, tokenizer = models.load(model_name_or_path, device=device)
    return PeftModel.from_pretrained(model, folder).eval(), tokenizer
