"""Fine-tuning methods: which weights train. full, freeze (the last/first n layers) and LoRA (peft).

    model = apply_method(model, config)     # returns the model to train (a PeftModel for lora)
    trainable_parameters(model)             # (trainable, total) counts

LoRA follows Hu et al. 2021 (arXiv:2106.09685): W' = W + (alpha/r)·B·A with A (r x d_in) random and
B (d_out x r) zero at the start, so training starts from the unchanged model. rsLoRA (Kalajdzievski
2023, arXiv:2312.03732) scales by alpha/sqrt(r); DoRA (Liu et al. 2024, arXiv:2402.09353) learns a
magnitude and a direction. QLoRA (Dettmers et al. 2023, arXiv:2305.14314) = this on a 4-bit base,
after peft's `prepare_model_for_kbit_training`.
Not here: OFT, PiSSA, LLaMA-Pro (LLaMA-Factory has them); GaLore is an optimizer (kit.train.runner).
"""
from __future__ import annotations

import re

_LAYER = re.compile(r"\.layers\.(\d+)\.")


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts, each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        count = param.numel()
        if hasattr(param, "quant_state") or param.__class__.__name__ == "Params4bit":
            count *= 2  # bitsandbytes packs two 4-bit values per stored byte
        total += count
        if param.requires_grad:
            trainable += count
    return trainable, total


def num_layers(model) -> int:
    config = getattr(model, "config", None)
    count = getattr(config, "num_hidden_layers", None)
    if count is None:
        ids = {int(m.group(1)) for name, _ in model.named_parameters() if (m := _LAYER.search(name))}
        count = max(ids) + 1 if ids else 0
    return int(count)


def apply_freeze(model, trainable_layers: int = 2, trainable_modules: str = "all",
                 extra_modules: str | None = None):
    """Freeze everything except the last `trainable_layers` layers (first ones when negative), and
    within them only `trainable_modules` (e.g. "mlp,self_attn"); `extra_modules` (e.g.
    "embed_tokens,norm") train too. Trainable half-precision weights are upcast to fp32."""
    import torch

    layers = num_layers(model)
    if trainable_layers == 0 or abs(trainable_layers) > layers:
        raise ValueError(f"freeze_trainable_layers = {trainable_layers} is out of range: the model has "
                         f"{layers} layers, use 1..{layers} (last n) or -{layers}..-1 (first n)")
    ids = set(range(layers - trainable_layers, layers)) if trainable_layers > 0 else set(range(-trainable_layers))
    modules = _names(trainable_modules)
    extra = _names(extra_modules)
    matched = 0
    for name, param in model.named_parameters():
        match = _LAYER.search(name)
        in_layer = match is not None and int(match.group(1)) in ids
        module_ok = "all" in modules or any(f".{m}." in name for m in modules)
        is_extra = any(re.search(rf"(^|\.){re.escape(m)}(\.|$)", name) for m in extra)
        train = (in_layer and module_ok) or is_extra
        param.requires_grad_(train)
        if train:
            matched += 1
            if param.dtype in (torch.float16, torch.bfloat16):
                param.data = param.data.float()
    if matched == 0:
        raise ValueError(f"freeze: no parameter matches freeze_trainable_modules={trainable_modules!r} "
                         f"in layers {sorted(ids)} (module names look like 'mlp', 'self_attn', 'mlp.down_proj')")
    return model


def lora_config(config):
    """The peft LoraConfig for a TrainConfig (lora_target 'all' = every linear layer but the head)."""
    from peft import LoraConfig, TaskType

    target = "all-linear" if _names(config.lora_target) in (["all"], []) else _names(config.lora_target)
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora_rank,
        lora_alpha=config.lora_alpha or config.lora_rank * 2,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        use_rslora=config.use_rslora,
        use_dora=config.use_dora,
        modules_to_save=_names(config.additional_target) or None,
    )


def apply_lora(model, config, *, quantized: bool = False, gradient_checkpointing: bool = False):
    """Wrap `model` with LoRA adapters (or load config.adapter_name_or_path to keep training it)."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": bool(getattr(config, "use_reentrant_gc", False))})
    adapters = _names(config.adapter_name_or_path)
    if adapters:
        for path in adapters[:-1]:  # earlier adapters are merged into the base, as LLaMA-Factory does
            if quantized:
                raise ValueError("adapter_name_or_path: merging several adapters into a quantized model "
                                 "is not supported; give one adapter")
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        return PeftModel.from_pretrained(model, adapters[-1], is_trainable=True)
    return get_peft_model(model, lora_config(config))


def apply_method(model, config, *, quantized: bool = False):
    """The model with the right weights trainable for config.finetuning_type (full / freeze / lora)."""
    from kit.train import accel

    device = next(model.parameters()).device.type
    gc = accel.use_gradient_checkpointing(config, device)
    if config.finetuning_type == "full":
        for param in model.parameters():
            param.requires_grad_(True)
    elif config.finetuning_type == "freeze":
        apply_freeze(model, config.freeze_trainable_layers, config.freeze_trainable_modules,
                     config.freeze_extra_modules)
    elif config.finetuning_type == "lora":
        model = apply_lora(model, config, quantized=quantized, gradient_checkpointing=gc)
    else:
        raise ValueError(f"finetuning_type = {config.finetuning_type!r}: expected full, freeze or lora")
    if gc and not quantized:
        accel.enable_gradient_checkpointing(model, config)
    return model
