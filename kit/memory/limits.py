"""Input checks of the memory calculator: absurd inputs are refused with the field, the value and
the allowed range, instead of returning nonsense (19,012 GiB for seq_len 10M; negative parameter
counts for negative layers). `estimate()` calls `check_inputs(arch, settings)` before any sum.

Bounds (a teaching calculator, not a proof): model sizes are positive whole numbers; seq_len may be
at most 4x the model's max_position_embeddings (RoPE scaling stretches a context that far in
practice) and at most 2**20 tokens; batch_size at most 4096 sequences per step; lora_rank at most
hidden_size; max_new_tokens >= 0.
"""
from __future__ import annotations

MAX_SEQ_LEN = 2**20        # tokens per sequence
MAX_BATCH_SIZE = 4096      # sequences per step
ROPE_STRETCH = 4           # seq_len / max_position_embeddings accepted


def _refuse(name: str, value, allowed: str):
    raise ValueError(f"setting {name}={value!r} is not allowed; expected {allowed}")


def check_arch(arch) -> None:
    """Every size of the architecture is a positive whole number and consistent."""
    for name in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                 "num_key_value_heads", "vocab_size", "max_position_embeddings"):
        value = getattr(arch, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _refuse(f"{arch.name}.{name}", value, "a whole number >= 1")
    if arch.num_key_value_heads > arch.num_attention_heads:
        _refuse(f"{arch.name}.num_key_value_heads", arch.num_key_value_heads,
                f"at most num_attention_heads ({arch.num_attention_heads})")
    if arch.head_dim is not None and (not isinstance(arch.head_dim, int) or arch.head_dim < 1):
        _refuse(f"{arch.name}.head_dim", arch.head_dim, "None or a whole number >= 1")
    if arch.head_dim is None and arch.hidden_size % arch.num_attention_heads:
        _refuse(f"{arch.name}.hidden_size", arch.hidden_size,
                f"a multiple of num_attention_heads ({arch.num_attention_heads}) when head_dim is None")


def longest_seq_len(arch) -> int:
    """The largest seq_len the calculator accepts for `arch` (tokens)."""
    return min(MAX_SEQ_LEN, ROPE_STRETCH * arch.max_position_embeddings)


def check_inputs(arch, settings) -> None:
    """Raise ValueError for an architecture or settings outside the bounds above."""
    check_arch(arch)
    longest = longest_seq_len(arch)
    if settings.seq_len > longest:
        _refuse("seq_len", settings.seq_len, f"at most {longest:,} tokens ({ROPE_STRETCH}x {arch.name}'s "
                f"max_position_embeddings {arch.max_position_embeddings:,}, capped at {MAX_SEQ_LEN:,})")
    if settings.batch_size > MAX_BATCH_SIZE:
        _refuse("batch_size", settings.batch_size, f"at most {MAX_BATCH_SIZE} sequences per step")
    if settings.lora_rank > arch.hidden_size:
        _refuse("lora_rank", settings.lora_rank, f"at most hidden_size ({arch.hidden_size})")
    if not isinstance(settings.max_new_tokens, int) or settings.max_new_tokens < 0:
        _refuse("max_new_tokens", settings.max_new_tokens, "a whole number >= 0")
    if settings.seq_len + settings.max_new_tokens > MAX_SEQ_LEN:
        _refuse("max_new_tokens", settings.max_new_tokens, f"seq_len + max_new_tokens <= {MAX_SEQ_LEN:,}")
