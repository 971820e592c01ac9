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

from kit.memory.compare import SEARCH_LIMIT
from kit.memory.estimate import METHODS, Breakdown, MemorySettings, train_config_inputs

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


# the comparison's columns: three of its own, then Breakdown components (labels on their fields)
COLUMNS = ("method", "total_gib", "trainable_params", "weights", "optimizer_states", "activations", "logits_loss")
_OWN_HEADERS = {"method": ("method", "方法"), "total_gib": ("total", "合计"),
                "trainable_params": ("trainable parameters", "可训练参数")}


def column_header(column: str, lang: int = 0) -> str:
    """A comparison column's header; sizes are in GiB (2^30 bytes) and say so."""
    if column in _OWN_HEADERS:
        text = _OWN_HEADERS[column][lang]
        return f"{text} (GiB)" if column == "total_gib" else text
    return f"{Breakdown.label(column, lang)} (GiB)"


def readable_table(rows: list[dict], lang: int = 0) -> tuple[list[str], list[list[str]]]:
    """(headers, cells) of the method comparison for people: units in the headers, GiB with two
    decimals, parameter counts as '4.40 M'."""
    headers = [column_header(c, lang) for c in COLUMNS]
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


def from_train_config(config) -> tuple[str, str, dict]:
    """(model, method, settings) of the run the training panel describes, on a GPU, as the panel
    shows them: `kit.memory.train_config_inputs` read the same way as the validated estimate, then the
    settings that apply to the method (settings_for)."""
    model, method, values = train_config_inputs(config, device="cuda")
    return model, method, settings_for(method, values)
