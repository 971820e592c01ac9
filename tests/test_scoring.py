"""kit.scoring: one padding rule, log-probs against an unbatched reference, the perplexities agree."""
import math

import pytest
import torch

from kit import evaluate, scoring, templates
from kit.train import diagnostics, dpo

ROWS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": "Paris is the capital of France."}]},
    {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]},
    {"messages": [{"role": "user", "content": "Count to five, please, slowly and clearly."},
                  {"role": "assistant", "content": "One, two, three, four, five."}]},
]


def _reference_logps(model, ids):
    """One sequence, no padding, no batching: log p(ids[t+1] | ids[:t+1])."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]


def test_token_logps_match_unbatched_reference(builtin):
    model, tok = builtin
    sequences = [tok("The sea is blue and deep.")["input_ids"], tok("Hi")["input_ids"],
                 tok("A longer sentence, so that the others need padding in the batch.")["input_ids"]]
    batched = scoring.token_logps(model, tok, sequences, batch_size=3)
    assert [len(x) for x in batched] == [len(s) - 1 for s in sequences]
    for ids, got in zip(sequences, batched):
        torch.testing.assert_close(got, _reference_logps(model, ids), atol=1e-4, rtol=1e-4)


def test_padding_side_left_gives_the_same_numbers_and_is_restored(builtin):
    model, tok = builtin
    sequences = [tok("short")["input_ids"], tok("a much longer text to pad against")["input_ids"]]
    right = scoring.token_logps(model, tok, sequences, batch_size=2)
    tok.padding_side = "left"
    try:
        left = scoring.token_logps(model, tok, sequences, batch_size=2)
        assert tok.padding_side == "left"
    finally:
        tok.padding_side = "right"
    for a, b in zip(right, left):
        torch.testing.assert_close(a, b)


def test_label_nll_counts_only_labelled_tokens(builtin):
    model, tok = builtin
    encoded = [templates.encode("smollm2", tok, row["messages"]) for row in ROWS]
    total, count = scoring.label_nll(model, tok, [{"input_ids": i, "labels": l} for i, l in encoded], batch_size=2)
    expected_total, expected_count = 0.0, 0
    for ids, labels in encoded:
        logp = _reference_logps(model, ids)
        keep = [t for t in range(len(ids) - 1) if labels[t + 1] != templates.IGNORE_INDEX]
        expected_total -= float(logp[keep].sum())
        expected_count += len(keep)
    assert count == expected_count and count < sum(len(i) for i, _ in encoded)
    assert math.isclose(total, expected_total, rel_tol=1e-4)


def test_the_two_perplexities_agree(builtin):
    """evaluate.loss_and_perplexity padded with EOS and diagnostics.answer_perplexity with 0: same rows,
    same number now that both go through kit.scoring (and with batch sizes that force padding)."""
    model, tok = builtin
    a = evaluate.loss_and_perplexity(model, tok, ROWS, "smollm2", batch_size=3)["perplexity"]
    b = diagnostics.answer_perplexity(model, tok, "smollm2", ROWS, batch_size=2)
    c = diagnostics.answer_perplexity(model, tok, "smollm2", ROWS, batch_size=1)
    assert math.isclose(a, b, rel_tol=1e-5) and math.isclose(b, c, rel_tol=1e-5)
    assert 1.0 < a < tok.vocab_size


def test_adapter_disabled_needs_an_adapter_and_restores_training_flag(builtin):
    model, tok = builtin
    with pytest.raises(ValueError, match="PeftModel"):
        with scoring.adapter_disabled(model):
            pass
    with scoring.adapter_disabled(model, disable=False) as same:
        assert same is model
    model.train()
    try:
        scoring.token_logps(model, tok, [tok("abc def")["input_ids"]])
        assert model.training
    finally:
        model.eval()


def test_pair_logps_and_reference_kl_use_the_same_scores(builtin):
    import copy

    from peft import LoraConfig, get_peft_model

    model, tok = builtin
    rows = [{"messages": [{"role": "user", "content": "Name a colour."}], "system": "",
             "chosen": {"role": "assistant", "content": "Blue."},
             "rejected": {"role": "assistant", "content": "I will not answer that question."}}]
    logps = diagnostics.pair_logps(model, tok, "smollm2", rows, batch_size=2)
    cols = dpo.encode_pairs(rows, tok, "smollm2", 1024, stage="diagnostics")
    start = len(cols["prompt_ids"][0])
    expected = float(_reference_logps(model, cols["chosen_input_ids"][0])[start - 1:].sum())
    assert logps["chosen"][0] == pytest.approx(expected, rel=1e-4) and logps["chosen"][0] < 0
    peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj"]))
    assert diagnostics.reference_kl(peft, None, tok, "smollm2", rows) == pytest.approx(0.0, abs=1e-6)  # B = 0
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)
    assert diagnostics.reference_kl(peft, None, tok, "smollm2", rows) > 1e-4
    assert diagnostics.reference_kl(peft, model, tok, "smollm2", rows) == pytest.approx(
        diagnostics.reference_kl(peft, None, tok, "smollm2", rows), rel=1e-4)
