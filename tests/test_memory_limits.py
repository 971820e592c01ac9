"""The memory calculator refuses absurd inputs (issue 17): the field, the value and the range."""
import pytest

from kit import memory
from kit.memory import compare, limits

QWEN_05B = {"num_hidden_layers": 24, "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
            "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768}


@pytest.mark.parametrize("model, settings, words", [
    ("Qwen2.5-7B", dict(seq_len=10_000_000), "seq_len=10000000 .*at most 131,072"),
    ({**QWEN_05B, "num_hidden_layers": -2}, {}, "num_hidden_layers=-2 .*>= 1"),
    ({**QWEN_05B, "hidden_size": 0}, {}, "hidden_size=0"),
    ({**QWEN_05B, "num_key_value_heads": 28}, {}, "num_key_value_heads=28 .*at most num_attention_heads"),
    ("Qwen2.5-7B", dict(batch_size=100_000), "batch_size=100000"),
    ("Qwen2.5-7B", dict(lora_rank=10_000), "lora_rank=10000 .*hidden_size"),
])
def test_absurd_inputs_are_refused(model, settings, words):
    with pytest.raises(ValueError, match=words):
        memory.estimate(model, "lora", **settings)


def test_sane_inputs_still_estimate():
    assert 0 < memory.estimate("Qwen2.5-7B", "qlora", seq_len=131_072).total_gib < 1000
    assert memory.estimate(QWEN_05B, "lora").total > 0


def test_largest_fitting_seq_len_stops_at_the_accepted_length():
    arch = memory.facts("Qwen2.5-7B")
    found = compare.largest_fitting("Qwen2.5-7B", "qlora", budget_gib=100_000, vary="seq_len")
    assert found == limits.longest_seq_len(arch) == 131_072
