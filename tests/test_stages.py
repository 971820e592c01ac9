"""Training stages beyond SFT (pt, rm, dpo + pref_loss, kto, grpo) and their diagnostics.

Fast tests check the pure parts (packing, pair encoding, errors, metric maths, perplexity against the
model's own loss); slow tests train each stage on the built-in model for a few CPU steps through
kit.train.run.
"""
import math

import pytest

from kit import models, templates
from kit.train import diagnostics, dpo, grpo, pt
from kit.train.config import TrainConfig


def make_config(stage, tmp_path, dataset, **overrides):
    values = {"stage": stage, "dataset": dataset, "output_dir": str(tmp_path / f"{stage}_run"), "max_steps": 3,
              "cutoff_len": 64, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
              "logging_steps": 1, "max_samples": 4, "report_to": "none", "learning_rate": 1e-4,
              "max_new_tokens": 12}
    values.update(overrides)
    return TrainConfig(**values)


def run(config):
    from kit import train

    result = train.run(config, live_plot=False)
    assert result.global_step >= 3, result
    assert len(result.losses) >= 3 and all(math.isfinite(x) for x in result.losses), result.losses
    return result


def load_rows(name, stage):
    from kit import data

    return data.load_dataset(name, stage=stage)


# ----------------------------------------------------------------------------- pure parts

def test_pack_texts_keeps_every_token_in_order():
    blocks = pt.pack_texts([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_size=4)
    assert blocks == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert pt.truncate_texts([[1, 2, 3], [4, 5]], 2) == [[1, 2], [4, 5]]
    assert pt.padding_share([[1, 2, 3], [4, 5]]) == pytest.approx(1 / 6)
    assert pt.padding_share(blocks[:2]) == 0.0
    with pytest.raises(ValueError, match="block_size"):
        pt.pack_texts([[1]], 0)


def test_pt_rows_must_be_plain_text():
    with pytest.raises(ValueError, match="row 1 is not a plain-text row"):
        pt.pt_texts([{"messages": [{"role": "assistant", "content": "ok"}]},
                     {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])


def test_encode_pairs_share_the_prompt_and_match_encode(tokenizer):
    rows = load_rows("dpo_en_demo", "dpo").select(range(3))
    cols = dpo.encode_pairs(rows, tokenizer, models.BUILTIN_TEMPLATE, cutoff_len=128)
    for i, row in enumerate(rows):
        ids, _ = templates.encode(models.BUILTIN_TEMPLATE, tokenizer, row["messages"] + [row["chosen"]],
                                       cutoff_len=128)
        assert cols["chosen_input_ids"][i] == ids  # same tokens as SFT encoding of prompt + chosen
        assert cols["chosen_input_ids"][i][:len(cols["prompt_ids"][i])] == cols["prompt_ids"][i]
        assert cols["rejected_input_ids"][i][:len(cols["prompt_ids"][i])] == cols["prompt_ids"][i]
        assert cols["chosen_ids"][i] != cols["rejected_ids"][i]


def test_non_ranking_rows_are_a_clear_error(tokenizer):
    rows = [{"messages": [{"role": "user", "content": "hi"}], "chosen": None, "rejected": None, "system": ""}]
    with pytest.raises(ValueError, match="row 0 has no 'chosen' answer"):
        dpo.encode_pairs(rows, tokenizer, models.BUILTIN_TEMPLATE, 64)


def test_ranking_data_only_where_it_belongs():
    from kit.data import DataError

    with pytest.raises(DataError, match="ranking"):
        load_rows("dpo_en_demo", "kto")
    with pytest.raises(DataError, match="ranking"):
        load_rows("identity", "dpo")


def test_pref_loss_choices():
    cfg = TrainConfig(pref_loss="kto_pair")
    with pytest.raises(ValueError, match="stage='kto'"):
        dpo.check_pref_loss(cfg)
    for loss in ("sigmoid", "hinge", "ipo", "orpo", "simpo"):
        assert dpo.check_pref_loss(TrainConfig(pref_loss=loss)) == loss


def test_dpo_rewards_maths():
    policy = {"chosen": [-1.0, -2.0], "rejected": [-3.0, -1.0]}
    reference = {"chosen": [-2.0, -2.0], "rejected": [-2.0, -2.0]}
    out = diagnostics.dpo_rewards(policy, reference, beta=0.5)
    assert out["chosen"] == [0.5, 0.0] and out["rejected"] == [-0.5, 0.5]
    assert out["margins"] == [1.0, -0.5] and out["accuracy"] == 0.5
    assert diagnostics.dpo_rewards(reference, reference, 0.1)["accuracy"] == 0.0  # ties are not wins


def test_preference_curves_read_trl_logs():
    log = [{"loss": 0.69, "rewards/chosen": 0.0, "rewards/rejected": 0.0, "rewards/margins": 0.0,
            "rewards/accuracies": 0.0, "step": 1},
           {"loss": 0.5, "rewards/chosen": 0.2, "rewards/rejected": -0.1, "rewards/margins": 0.3,
            "rewards/accuracies": 1.0, "step": 2},
           {"train_loss": 0.6, "step": 2}]
    curves = diagnostics.preference_curves(log)
    assert curves["steps"] == [1, 2] and curves["margin"] == [0.0, 0.3] and curves["accuracy"] == [0.0, 1.0]
    assert curves["kl"] == []
    rm_log = [{"loss": 0.7, "accuracy": 0.5, "margin": -0.1, "mean_reward": 0.2, "step": 1}]
    assert diagnostics.preference_curves(rm_log)["accuracy"] == [0.5]
    fig = diagnostics.plot_preference(log)
    assert len(fig.axes) == 2


def test_perplexity_matches_the_models_own_loss(builtin):
    import torch

    model, tokenizer = builtin
    text = "Neptune is the eighth planet from the Sun."
    ids, _ = templates.encode_pretrain(tokenizer, text)
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert diagnostics.perplexity(model, tokenizer, [text]) == pytest.approx(math.exp(loss), rel=1e-3)
    # two texts: token-weighted, and windows longer than cutoff_len are split, not dropped
    total, count = diagnostics.token_nll(model, tokenizer, [text, text + " " + text], cutoff_len=8)
    assert count == sum(len(w) - 1 for w in _windows(tokenizer, [text, text + " " + text], 8))
    assert math.isfinite(total)


def test_answer_perplexity_matches_the_models_masked_loss(builtin):
    import torch

    model, tokenizer = builtin
    row = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}],
           "system": ""}
    ids, labels = templates.encode(models.BUILTIN_TEMPLATE, tokenizer, row["messages"])
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    got = diagnostics.answer_perplexity(model, tokenizer, templates.get(models.BUILTIN_TEMPLATE), [row])
    assert got == pytest.approx(math.exp(loss), rel=1e-3)


def _windows(tokenizer, texts, size):
    out = []
    for text in texts:
        ids, _ = templates.encode_pretrain(tokenizer, text)
        out += [ids[i:i + size] for i in range(0, len(ids), size) if len(ids[i:i + size]) > 1]
    return out


def test_reward_rules_and_generation_groups(tmp_path):
    reward = grpo.rule_reward("length")
    assert reward(["p"], ["word " * 30])[0] == 0.0
    assert reward(["p"], ["word"])[0] < -0.9
    with pytest.raises(ValueError, match="rule:nope"):
        grpo.rule_reward("nope")
    grpo.register_reward("shout", lambda answer, messages: float(answer.isupper()))
    assert grpo.rule_reward("shout")(["p", "p"], ["HI", "hi"]) == [1.0, 0.0]

    from kit.train.context import StageContext

    ctx = StageContext(config=TrainConfig(), model=None, tokenizer=None, template=None, train_dataset=None,
                       training_args={"per_device_train_batch_size": 2, "gradient_accumulation_steps": 3})
    assert grpo.num_generations(ctx) == 6
    ctx.training_args = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 1}
    with pytest.raises(ValueError, match=">= 2"):
        grpo.num_generations(ctx)
    ctx.config = TrainConfig(stage="grpo")
    with pytest.raises(ValueError, match="reward_model"):
        grpo.reward_function(ctx)


def test_grpo_prompt_is_rendered_by_our_template(tokenizer):
    template = templates.get(models.BUILTIN_TEMPLATE)
    messages = [{"role": "user", "content": "Who are you?"}]
    text = grpo.prompt_text(template, tokenizer, messages)
    assert tokenizer(text, add_special_tokens=True)["input_ids"] == \
        templates.encode_prompt(template, tokenizer, messages)


# ----------------------------------------------------------------------------- training runs

@pytest.mark.slow
def test_pt_trains_and_perplexity_drops(tmp_path, builtin):
    from peft import PeftModel

    result = run(make_config("pt", tmp_path, "c4_demo", learning_rate=5e-4, max_steps=4))
    base, tokenizer = builtin
    texts = pt.pt_texts(load_rows("c4_demo", "pt").select(range(4)))
    before = diagnostics.perplexity(base, tokenizer, texts, cutoff_len=64)
    trained = PeftModel.from_pretrained(base, result.output_dir)
    try:
        after = diagnostics.perplexity(trained, tokenizer, texts, cutoff_len=64)
    finally:
        trained.unload()
    assert math.isfinite(before) and after < before, (before, after)


@pytest.mark.slow
def test_dpo_reward_accuracy_rises_on_its_training_pairs(tmp_path, builtin):
    from peft import PeftModel

    config = make_config("dpo", tmp_path, "dpo_en_demo", max_samples=8, max_steps=4, learning_rate=5e-4)
    result = run(config)
    curves = diagnostics.preference_curves(result.log_history)
    assert curves["accuracy"][0] == 0.0 and max(curves["accuracy"][1:]) > curves["accuracy"][0]

    # measured again, independently of TRL's logs, on all 8 training pairs
    model, tokenizer = builtin
    rows = load_rows("dpo_en_demo", "dpo").select(range(8))
    reference = diagnostics.pair_logps(model, tokenizer, models.BUILTIN_TEMPLATE, rows, cutoff_len=64)
    start = diagnostics.dpo_rewards(reference, reference, config.pref_beta)
    policy_model = PeftModel.from_pretrained(model, result.output_dir)
    policy = diagnostics.pair_logps(policy_model, tokenizer, models.BUILTIN_TEMPLATE, rows, cutoff_len=64)
    end = diagnostics.dpo_rewards(policy, reference, config.pref_beta)
    try:
        kl = diagnostics.reference_kl(policy_model, None, tokenizer, models.BUILTIN_TEMPLATE, rows, cutoff_len=64)
    finally:
        policy_model.unload()  # give the shared fixture back unchanged
    assert end["accuracy"] > start["accuracy"], (start, end)
    assert end["mean_margin"] > 0
    assert kl > 0 and math.isfinite(kl)


@pytest.mark.slow
@pytest.mark.parametrize("pref_loss", ["orpo", "simpo"])
def test_dpo_reference_free_losses(tmp_path, pref_loss):
    result = run(make_config("dpo", tmp_path, "dpo_en_demo", pref_loss=pref_loss))
    curves = diagnostics.preference_curves(result.log_history)
    assert len(curves["margin"]) >= 3 and all(math.isfinite(m) for m in curves["margin"])


def _tiny_causal_lm():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2))


def test_reference_model_is_a_frozen_copy_for_full_finetuning():
    import types

    import torch

    model = _tiny_causal_lm()
    ctx = types.SimpleNamespace(config=types.SimpleNamespace(), model=model, ref_model=None)
    ref = dpo.reference_model(ctx)
    assert ref is not model and not ref.training
    assert not any(p.requires_grad for p in ref.parameters()) and all(p.requires_grad for p in model.parameters())
    with torch.no_grad():  # "training" the policy must not move the reference
        model.lm_head.weight.add_(1.0)
    assert not torch.equal(ref.lm_head.weight, model.lm_head.weight)
    torch.testing.assert_close(ref.lm_head.weight + 1.0, model.lm_head.weight)
    given = _tiny_causal_lm()
    assert dpo.reference_model(types.SimpleNamespace(config=ctx.config, model=model, ref_model=given)) is given


@pytest.mark.slow
def test_dpo_full_finetuning_with_frozen_copy_as_reference(tmp_path, monkeypatch, builtin):
    import torch

    seen = {}
    original = dpo.reference_model

    def spy(ctx):
        seen["ref"], seen["policy"] = original(ctx), ctx.model
        return seen["ref"]

    monkeypatch.setattr(dpo, "reference_model", spy)
    run(make_config("dpo", tmp_path, "dpo_en_demo", finetuning_type="full", learning_rate=1e-5,
                    pref_loss="hinge"))
    ref, policy = seen["ref"], seen["policy"]
    assert ref is not policy and not any(p.requires_grad for p in ref.parameters())
    base = dict(builtin[0].named_parameters())
    ref_params, policy_params = dict(ref.named_parameters()), dict(policy.named_parameters())
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(ref_params[name].float().cpu(), base[name])          # the reference stayed the base
    assert not torch.equal(policy_params[name].float().cpu(), base[name])   # while the policy trained


@pytest.mark.slow
def test_rm_trains_saves_and_scores(tmp_path):
    from kit.train import rm

    result = run(make_config("rm", tmp_path, "dpo_en_demo", quantization_bit=4))  # QLoRA
    curves = diagnostics.preference_curves(result.log_history)
    assert len(curves["accuracy"]) >= 3
    reward_model, tokenizer = rm.load_reward_model(result.output_dir, device="cpu")
    rows = load_rows("dpo_en_demo", "rm").select(range(2))
    scores = diagnostics.reward_accuracy(reward_model, tokenizer, models.BUILTIN_TEMPLATE, rows, cutoff_len=64)
    assert len(scores["chosen"]) == 2 and all(math.isfinite(s) for s in scores["chosen"] + scores["rejected"])


@pytest.mark.slow
def test_kto_trains_and_logs_kl(tmp_path):
    result = run(make_config("kto", tmp_path, "kto_en_demo", max_samples=6))
    assert any("kl" in entry for entry in result.log_history)


@pytest.mark.slow
def test_grpo_runs_with_a_rule_reward(tmp_path):
    result = run(make_config("grpo", tmp_path, "identity", reward_model="rule:length", ppo_epochs=1))
    curves = diagnostics.preference_curves(result.log_history)
    assert curves["reward"] and all(math.isfinite(r) for r in curves["reward"])
    assert curves["kl"]  # GRPO's KL to the reference (pref_beta > 0)
