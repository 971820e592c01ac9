"""Which calculator settings apply to which method, and how the calculator shows its answers: the
rules the memory panel (kit.ui.memory) follows, as pure functions tested without widgets.

    applicable("lora")                       # the MemorySettings fields that change a LoRA estimate
    settings_for("qlora", values)            # values for estimate(); ValueError explains a bad mix
    readable_table(compare_methods(...))     # headers with units, counts like "7.62 B"
    largest_text(4096, "batch_size")         # "≥ 4096 (search limit)" rather than a fake answer

Not here: byte arithmetic (kit.memory.estimate), widgets (kit.ui.memory).
"""
from __future__ import annotations

from dataclasses import fields

from kit.memory.estimate import METHODS, MemorySettings

TRAINING = ("full", "freeze", "lora", "qlora")
# setting -> the methods whose estimate it changes (every other setting applies to all methods)
APPLIES_TO = {
    "quantization_bit": ("inference", "lora", "qlora"),
    "double_quantization": ("inference", "qlora"),
    "gradient_checkpointing": TRAINING,
    "optimizer": TRAINING,
    "lora_rank": ("lora", "qlora"),
    "lora_target": ("lora", "qlora"),
    "freeze_trainable_layers": ("freeze",),
    "pure_bf16": ("full",),
    "max_new_tokens": ("inference",),
}
# the search limits kit.memory.compare.largest_fitting uses by default
SEARCH_LIMIT = {"batch_size": 4096, "seq_len": 1 << 20}


def applicable(method: str) -> set[str]:
    """Names of the MemorySettings fields that change the estimate of `method`."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    return {f.name for f in fields(MemorySettings) if method in APPLIES_TO.get(f.name, METHODS)}


def settings_for(method: str, values: dict) -> dict:
    """The settings `estimate(model, method, **settings)` gets from the panel's values: those that do
    not apply to the method are left out; a quantization that contradicts the method is an error
    that says what to change (estimate() alone would silently assume 4-bit for qlora)."""
    bits = values.get("quantization_bit")
    if method == "qlora" and bits is None:
        raise ValueError("method 'qlora' needs quantization_bit 4 or 8: QLoRA trains LoRA adapters on a "
                         "quantized model. With quantization 'none' choose method 'lora'.")
    if method in ("full", "freeze") and bits is not None:
        raise ValueError(f"quantization_bit={bits} cannot be used with method {method!r}: quantized weights "
                         f"train only through LoRA adapters. Set quantization to 'none', or choose 'qlora'.")
    keep = applicable(method)
    return {name: value for name, value in values.items() if name in keep}


def comparison_settings(values: dict) -> dict:
    """The settings shared by every row of compare_methods (each row sets its own bits / pure_bf16)."""
    keep = set().union(*(applicable(m) for m in TRAINING)) - {"quantization_bit", "pure_bf16"}
    return {name: value for name, value in values.items() if name in keep}


def human_count(n: int | float) -> str:
    """7615616512 -> '7.62 B', 4399104 -> '4.40 M', 950 -> '950' (parameters, tokens)."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.2f} {suffix}"
    return f"{n:g}"


# comparison column -> (English header, Chinese header); GiB = 2^30 bytes
COLUMNS = {
    "method": ("method", "方法"),
    "total_gib": ("total (GiB)", "合计 (GiB)"),
    "trainable_params": ("trainable parameters", "可训练参数"),
    "weights": ("weights (GiB)", "权重 (GiB)"),
    "optimizer_states": ("optimizer states (GiB)", "优化器状态 (GiB)"),
    "activations": ("activations (GiB)", "激活值 (GiB)"),
    "logits_loss": ("logits + loss (GiB)", "logits 与损失 (GiB)"),
}


def readable_table(rows: list[dict], lang: int = 0) -> tuple[list[str], list[list[str]]]:
    """(headers, cells) of the method comparison for people: units in the headers, GiB with two
    decimals, parameter counts as '4.40 M'."""
    headers = [COLUMNS[c][lang] for c in COLUMNS]
    cells = []
    for row in rows:
        line = []
        for column in COLUMNS:
            value = row.get(column, "")
            if column == "trainable_params":
                line.append(human_count(value))
            elif isinstance(value, float):
                line.append(f"{value:.2f}")
            else:
                line.append(str(value))
        cells.append(line)
    return headers, cells


def largest_text(n: int, vary: str, lang: int = 0) -> str:
    """How the calculator states a largest_fitting answer: 'none' for 0, '≥ limit (search limit)'
    when the search stopped at its limit (the true answer may be larger)."""
    if n == 0:
        return "none fits" if not lang else "都放不下"
    if n >= SEARCH_LIMIT[vary]:
        return f"≥ {n} (search limit)" if not lang else f"≥ {n}（搜索上限）"
    return str(n)


def adjust_for_method(method: str, values: dict) -> dict:
    """The values after the learner picks `method`: quantization that cannot go with it is reset
    (full / freeze / lora: none; qlora: 4-bit when it was none). What the learner sets after that
    is checked by `settings_for`, never silently changed."""
    values = dict(values)
    if method in ("full", "freeze", "lora"):
        values["quantization_bit"] = None
    elif method == "qlora" and values.get("quantization_bit") is None:
        values["quantization_bit"] = 4
    return values


def from_train_config(config) -> tuple[object, str, dict]:
    """(model, method, settings) for `estimate()` from a kit.train.TrainConfig: the memory of the
    run the training panel describes, on a GPU in bf16 (fp16 when `fp16` is ticked).

    model is a bundled name when one matches, else the model's transformers config (read from its
    folder or the hub cache; only config.json, no weights)."""
    from kit.memory.architectures import names as bundled

    name = str(config.model_name_or_path)
    lookup = {n.lower(): n for n in bundled()}
    short = name.rstrip("/").split("/")[-1].lower()
    model = lookup.get(short) or lookup.get(short.replace("-instruct", ""))
    if model is None:
        from transformers import AutoConfig

        from kit import models

        model = AutoConfig.from_pretrained(models.resolve(name))
    method = config.finetuning_type
    if method == "lora" and config.quantization_bit:
        method = "qlora"
    targets = "all" if config.lora_target in ("all", "", None) else config.lora_target
    values = dict(dtype="float16" if config.fp16 else "bfloat16", quantization_bit=config.quantization_bit,
                  double_quantization=config.double_quantization, batch_size=config.per_device_train_batch_size,
                  seq_len=config.cutoff_len, gradient_checkpointing=not config.disable_gradient_checkpointing,
                  optimizer="adamw_8bit" if "8bit" in config.optim else "adamw_torch",
                  lora_rank=config.lora_rank, lora_target=targets,
                  freeze_trainable_layers=abs(config.freeze_trainable_layers), pure_bf16=config.pure_bf16)
    return model, method, settings_for(method, values)
