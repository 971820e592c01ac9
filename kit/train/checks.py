"""Checks that run before any weights load (kit.train.run calls `preflight(config)` first), so a run
that cannot work fails in seconds with the reason instead of after the model loads:

- template fit: every special marker of the template (its stop words, `<|...|>` markers in what it
  renders) must be ONE token of the model's tokenizer. `llama3` on the built-in SmolLM2 fails:
  `<|eot_id|>` is 8 ordinary tokens there, so the model would learn to spell an end marker instead
  of stopping. `force_template=True` trains anyway (the missing markers are then added as new
  tokens, as LLaMA-Factory does). Only the tokenizer is loaded.
- `adapter_name_or_path` folders hold a whole adapter (a cut-short file is named, not a bare
  JSON / safetensors error after the model loads).
- `lora_target` names modules that exist (and are linear layers) and `freeze_trainable_layers` is
  within the model's layer count; read from a weightless copy of the architecture (meta device).

Not here: comparing the template with the tokenizer's own chat template token by token (a template
can differ from it on purpose, e.g. in its default system prompt).
"""
from __future__ import annotations

import re

from kit.train.config import ConfigError, TrainConfig

MARKER = re.compile(r"<\|[^|<>\s]{1,40}\|>")  # <|im_start|>, <|eot_id|>, <|start_header_id|>, ...


def template_markers(template, tokenizer) -> list[str]:
    """The template's special markers: its stop words and every `<|...|>` in a rendered sample."""
    sample = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
              {"role": "user", "content": "bye"}]
    try:
        text = template.render(sample, system="sys", tokenizer=tokenizer, add_generation_prompt=True)
    except Exception:  # a template that cannot render this sample: its stop words still count
        text = ""
    found = [w for w in template.stop_words if w] + MARKER.findall(text)
    return list(dict.fromkeys(found))


def template_fit_problems(template, tokenizer) -> list[str]:
    """One line per marker the tokenizer does not have as a single token ([] = fits)."""
    problems = []
    for marker in template_markers(template, tokenizer):
        ids = tokenizer.encode(marker, add_special_tokens=False)
        if len(ids) != 1:
            problems.append(f"{marker!r} is {len(ids)} tokens")
    return problems


def check_template_fit(config: TrainConfig, tokenizer=None) -> list[str]:
    """Raise ConfigError when config.template does not fit the model's tokenizer (unless
    config.force_template); returns the problems found (also when forced)."""
    from kit import models, templates

    template = templates.get(config.template)
    tokenizer = tokenizer or models.load_tokenizer(config.model_name_or_path)
    problems = template_fit_problems(template, tokenizer)
    if problems and not getattr(config, "force_template", False):
        raise ConfigError(
            f"field 'template' = {config.template!r} does not fit the tokenizer of {config.model_name_or_path!r}: "
            f"{'; '.join(problems)} there (a template's markers must be single tokens, or the model learns to "
            f"spell them instead of stopping). Use the model's own template (the built-in model's is "
            f"{models.BUILTIN_TEMPLATE!r}), or set force_template=True to add them as new tokens anyway.")
    return problems


def _skeleton(config: TrainConfig):
    """The model's architecture without weights (meta device): module names and layer count."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from kit import models

    model_config = AutoConfig.from_pretrained(models.resolve(config.model_name_or_path),
                                              trust_remote_code=config.trust_remote_code)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_config(model_config, trust_remote_code=config.trust_remote_code)


def check_method_targets(config: TrainConfig, skeleton=None) -> None:
    """Raise ConfigError for a lora_target module that does not exist (or is not linear) or a
    freeze_trainable_layers outside the model's layers, before any weights load."""
    from kit.train import methods

    if config.finetuning_type not in ("lora", "freeze"):
        return
    names = [n.strip() for n in (config.lora_target or "").split(",") if n.strip()]
    if config.finetuning_type == "lora" and names in (["all"], []):
        return
    import torch

    skeleton = skeleton or _skeleton(config)
    if config.finetuning_type == "lora":  # peft matches a target against the end of module names
        adaptable = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d)
        modules = dict(skeleton.named_modules())
        linear = sorted({n.split(".")[-1] for n, m in modules.items()
                         if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")})
        for target in names:
            hits = [m for n, m in modules.items() if n == target or n.endswith("." + target)]
            if hits and all(isinstance(m, adaptable) for m in hits):
                continue
            what = "is not a layer LoRA can adapt" if hits else "is not a module of this model"
            raise ConfigError(f"field 'lora_target' = {config.lora_target!r}: {target!r} {what}; "
                              f"the model's linear layers are {linear} (or use 'all')")
    else:
        layers = methods.num_layers(skeleton)
        n = config.freeze_trainable_layers
        if n == 0 or abs(n) > layers:
            raise ConfigError(f"field 'freeze_trainable_layers' = {n} is out of range: "
                              f"{config.model_name_or_path} has {layers} layers, use 1..{layers} (the last n) "
                              f"or -{layers}..-1 (the first n)")


def preflight(config: TrainConfig) -> list[str]:
    """Every check above, before any weights load. Returns the template problems that were
    accepted because of force_template ([] normally)."""
    problems = check_template_fit(config)
    check_method_targets(config)
    check_adapters(config)
    return problems


def check_adapters(config: TrainConfig) -> None:
    """Every folder of adapter_name_or_path is a whole LoRA adapter (ConfigError naming the file)."""
    from pathlib import Path

    from kit.train.checkpoints import adapter_problems

    for folder in [p.strip() for p in (config.adapter_name_or_path or "").split(",") if p.strip()]:
        if Path(folder).is_dir() and (problems := adapter_problems(folder)):
            raise ConfigError(f"field 'adapter_name_or_path' = {folder!r}: {'; '.join(problems)}")
