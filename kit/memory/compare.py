"""Questions a learner asks of the calculator: which method, which GPU, how large a batch.

* `compare_methods(model, **settings)`: full / freeze / LoRA / QLoRA-8 / QLoRA-4 side by side.
* `fit_verdicts(breakdown_or_bytes, budget_gib=None)`: fits / tight / does not fit on common GPUs.
* `largest_fitting(model, method, budget_gib, vary="batch_size")`: the largest batch (or seq_len).
* `llamafactory_table(...)`: LLaMA-Factory's README hardware table beside this calculator's numbers.

Verdicts leave headroom: PyTorch's caching allocator reserves more than it hands out (fragmentation),
so "fits" means the estimate is at most 95 % of the card and "tight" at most 100 %.
Not here: multi-GPU sharding, CPU offload, anything that draws (kit.ui.memory).
"""
from __future__ import annotations

from kit.memory.estimate import GIB, Breakdown, estimate

MIB = 2**20  # bytes
# Memory as nvidia-smi reports it (MiB), i.e. what a process can ask for at most.
GPUS: dict[str, int] = {
    "T4 16GB": 15360 * MIB,
    "L4 24GB": 23034 * MIB,
    "A100 40GB": 40960 * MIB,
    "A100 80GB": 81920 * MIB,
    "H100 80GB": 81559 * MIB,
}
HEADROOM = 0.95  # fraction of a card the estimate may use and still "fit" (allocator fragmentation)

# method label -> (kit.memory method, settings it implies)
COMPARED_METHODS = {
    "full (AMP)": ("full", {}),
    "full (pure bf16)": ("full", {"pure_bf16": True}),
    "freeze": ("freeze", {}),
    "LoRA": ("lora", {}),
    "QLoRA 8-bit": ("qlora", {"quantization_bit": 8}),
    "QLoRA 4-bit": ("qlora", {"quantization_bit": 4}),
}


def compare_methods(model, **settings) -> list[dict]:
    """One row per fine-tuning method: label, total GiB, trainable parameters and each component (GiB)."""
    rows = []
    for label, (method, extra) in COMPARED_METHODS.items():
        merged = {k: v for k, v in settings.items() if k not in ("quantization_bit", "pure_bf16")}
        merged.update(extra)
        b = estimate(model, method, **merged)
        row = {"method": label, "total_gib": round(b.total_gib, 2), "total_bytes": b.total,
               "trainable_params": b.trainable_params, "peak_at": b.peak_at}
        row.update({k: round(v, 3) for k, v in b.as_dict().items() if k != "total"})
        rows.append(row)
    return rows


def verdict(total_bytes: int, capacity_bytes: int) -> str:
    """'fits' (<= 95 % of the card), 'tight' (<= 100 %) or 'does not fit'."""
    if total_bytes <= HEADROOM * capacity_bytes:
        return "fits"
    if total_bytes <= capacity_bytes:
        return "tight"
    return "does not fit"


def fit_verdicts(breakdown: Breakdown | int, budget_gib: float | None = None) -> dict[str, str]:
    """Verdict for each common GPU, plus 'custom <n> GiB' when a budget is given."""
    total = breakdown.total if isinstance(breakdown, Breakdown) else int(breakdown)
    out = {name: verdict(total, capacity) for name, capacity in GPUS.items()}
    if budget_gib is not None:
        if budget_gib <= 0:
            raise ValueError(f"budget_gib must be positive; got {budget_gib}")
        out[f"custom {budget_gib:g} GiB"] = verdict(total, int(budget_gib * GIB))
    return out


SEARCH_LIMIT = {"batch_size": 4096, "seq_len": 1 << 20}  # largest_fitting's default upper bounds


def largest_fitting(model, method: str, budget_gib: float, vary: str = "batch_size", upper: int | None = None,
                    **settings) -> int:
    """The largest batch_size (or seq_len) whose estimate is at most HEADROOM x budget; 0 if none fits.

    Memory grows with both, so a doubling search then a bisection finds it in ~2 log2(answer) estimates."""
    if vary not in ("batch_size", "seq_len"):
        raise ValueError(f"vary must be 'batch_size' or 'seq_len'; got {vary!r}")
    if budget_gib <= 0:
        raise ValueError(f"budget_gib must be positive; got {budget_gib}")
    limit = int(HEADROOM * budget_gib * GIB)
    upper = upper or SEARCH_LIMIT[vary]
    if vary == "seq_len":  # estimate() refuses longer sequences than the model can take (kit.memory.limits)
        from kit.memory.architectures import facts
        from kit.memory.limits import longest_seq_len

        upper = min(upper, longest_seq_len(facts(model)))

    def fits(n: int) -> bool:
        return estimate(model, method, **{**settings, vary: n}).total <= limit

    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= upper and fits(high):
        low, high = high, high * 2
    high = min(high, upper + 1)
    while high - low > 1:  # invariant: fits(low), not fits(high) (or high beyond upper)
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


# LLaMA-Factory README, "Hardware Requirement" (estimated; GB): rows as published, columns 7B/14B/30B/70B.
LLAMAFACTORY_README = [
    ("Full (bf16 / fp16)", 32, [120, 240, 600, 1200], "18x"),
    ("Full (pure_bf16)", 16, [60, 120, 300, 600], "8x"),
    ("Freeze / LoRA / GaLore / APOLLO", 16, [16, 32, 64, 160], "2x"),
    ("QLoRA", 8, [10, 20, 40, 80], "x"),
    ("QLoRA", 4, [6, 12, 24, 48], "x/2"),
    ("QLoRA", 2, [4, 8, 16, 24], "x/4"),
]
# The bundled architecture used for each README column (30B: Qwen2.5-32B, the closest bundled size).
README_MODELS = {"7B": "Qwen2.5-7B", "14B": "Qwen2.5-14B", "30B": "Qwen2.5-32B", "70B": "Llama-3.1-70B"}
_README_METHOD = {
    ("Full (bf16 / fp16)", 32): ("full", {}),
    ("Full (pure_bf16)", 16): ("full", {"pure_bf16": True}),
    ("Freeze / LoRA / GaLore / APOLLO", 16): ("lora", {}),
    ("QLoRA", 8): ("qlora", {"quantization_bit": 8}),
    ("QLoRA", 4): ("qlora", {"quantization_bit": 4}),
}


def llamafactory_table(batch_size: int = 1, seq_len: int = 1024, gradient_checkpointing: bool = True) -> list[dict]:
    """The README's rows with the kit's estimate (GB = 10^9 bytes, as the README uses) at a stated shape.

    2-bit QLoRA (HQQ/AQLM in LLaMA-Factory) is not modelled: bitsandbytes has no 2-bit weights."""
    rows = []
    for label, bits, readme, rule in LLAMAFACTORY_README:
        row = {"method": label, "bits": bits, "rule": rule}
        key = (label, bits)
        for (size, model), published in zip(README_MODELS.items(), readme):
            row[f"{size} README"] = published
            if key in _README_METHOD:
                method, extra = _README_METHOD[key]
                b = estimate(model, method, batch_size=batch_size, seq_len=seq_len,
                             gradient_checkpointing=gradient_checkpointing, **extra)
                row[f"{size} kit"] = round(b.total / 1e9, 1)
            else:
                row[f"{size} kit"] = None
        rows.append(row)
    return rows


# From the most to the least faithful training (fewest approximations of the model being trained).
PREFERENCE = ["full (AMP)", "full (pure bf16)", "freeze", "LoRA", "QLoRA 8-bit", "QLoRA 4-bit"]


def best_method(model, gpu: str, **settings) -> str | None:
    """The first method in PREFERENCE whose estimate 'fits' on `gpu` (a GPUS key); None if none does.

    Used to check lesson 04's exercise: `assert my_choice == best_method("Qwen2.5-7B", "L4 24GB", ...)`."""
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; choose from {', '.join(GPUS)}")
    rows = {r["method"]: r for r in compare_methods(model, **settings)}
    for label in PREFERENCE:
        if verdict(rows[label]["total_bytes"], GPUS[gpu]) == "fits":
            return label
    return None
