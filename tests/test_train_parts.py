"""Direct tests of kit/train/methods.py, sft.py (encoding and packing) and monitor.py, on a tiny random
Llama (no download, no training run)."""
import json
import math
import types

import pytest
import torch

from kit import templates
from kit.train import methods, monitor, sft
from kit.train.config import TrainConfig

LAYERS, HIDDEN, INTER, VOCAB = 3, 16, 32, 64


def tiny_model(dtype=torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False)
    return LlamaForCausalLM(config).to(dtype)


# ------------------------------------------------------------------------------------ methods

def test_freeze_trains_only_the_last_layers_modules_and_upcasts():
    model = tiny_model(torch.bfloat16)
    methods.apply_freeze(model, trainable_layers=1, trainable_modules="mlp", extra_modules="norm")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"model.layers.2.mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")} | {"model.norm.weight"}
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trainable)
    assert all(p.dtype == torch.bfloat16 for n, p in model.named_parameters() if n not in trainable)
    per_mlp = 3 * HIDDEN * INTER
    assert methods.trainable_parameters(model)[0] == per_mlp + HIDDEN


def test_freeze_first_layers_and_errors():
    model = tiny_model()
    methods.apply_freeze(model, trainable_layers=-1)
    layers = {n.split(".")[2] for n, p in model.named_parameters() if p.requires_grad}
    assert layers == {"0"}
    with pytest.raises(ValueError, match="out of range"):
        methods.apply_freeze(tiny_model(), trainable_layers=LAYERS + 1)
    with pytest.raises(ValueError, match="no parameter matches"):
        methods.apply_freeze(tiny_model(), trainable_layers=1, trainable_modules="not_a_module")


def test_trainable_parameters_counts_shared_tensors_once():
    model = tiny_model()
    trainable, total = methods.trainable_parameters(model)
    assert trainable == total == sum(p.numel() for p in model.parameters())
    model.lm_head.weight = model.model.embed_tokens.weight  # tie: one tensor
    assert methods.trainable_parameters(model)[1] == total - VOCAB * HIDDEN


def test_lora_adds_rank_r_matrices_and_starts_from_the_unchanged_model():
    config = TrainConfig(finetuning_type="lora", lora_rank=4, lora_target="q_proj,v_proj")
    assert methods.lora_config(config).lora_alpha == 8  # default alpha = 2 r
    model = tiny_model()
    ids = torch.tensor([[1, 2, 3, 4]])
    before = model(input_ids=ids).logits
    lora = methods.apply_lora(model, config)
    trainable, _ = methods.trainable_parameters(lora)
    assert trainable == LAYERS * 2 * 4 * (HIDDEN + HIDDEN)  # q and v: A (r x in) + B (out x r)
    torch.testing.assert_close(lora(input_ids=ids).logits, before)  # B = 0 at the start


def test_apply_method_rejects_unknown_finetuning_type():
    config = types.SimpleNamespace(finetuning_type="prefix", disable_gradient_checkpointing=True)
    with pytest.raises(ValueError, match="full, freeze or lora"):
        methods.apply_method(tiny_model(), config)


# ------------------------------------------------------------------------------------ sft

def test_encode_rows_is_the_template_encoding_and_skips_rows_without_answer(tokenizer, monkeypatch):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"}]},
            {"messages": [{"role": "user", "content": "Tell me more"}, {"role": "assistant", "content": "Sure."}]}]
    config = TrainConfig(cutoff_len=64, train_on_prompt=False, mask_history=False)
    features = sft.encode_rows(rows, tokenizer, "smollm2", config)
    for i, row in enumerate(rows):
        ids, labels = templates.encode("smollm2", tokenizer, row["messages"], cutoff_len=64)
        assert features["input_ids"][i] == list(ids) and features["labels"][i] == list(labels)
        assert any(label != templates.IGNORE_INDEX for label in labels)
    real = templates.encode

    def answer_cut_off(template, tok, messages, **kw):  # as if cutoff_len left no answer token
        ids, labels = real(template, tok, messages, **kw)
        return (ids, [templates.IGNORE_INDEX] * len(labels)) if "more" in messages[0]["content"] else (ids, labels)

    monkeypatch.setattr(templates, "encode", answer_cut_off)
    with pytest.warns(UserWarning, match=r"rows \[1\]"):
        features = sft.encode_rows(rows, tokenizer, "smollm2", config)
    assert len(features["input_ids"]) == 1
    with pytest.raises(ValueError, match="no row has an answer"):
        sft.encode_rows(rows[1:], tokenizer, "smollm2", config)


def test_pack_keeps_every_token_in_order_within_cutoff():
    features = {"input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]],
                "labels": [[-100, 2, 3], [-100, 5], [-100, 7, 8, 9], [10]]}
    packed = sft.pack(features, cutoff_len=5)
    assert packed["input_ids"] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert packed["labels"] == [[-100, 2, 3, -100, 5], [-100, 7, 8, 9, 10]]
    long = sft.pack({"input_ids": [[1] * 7, [2]], "labels": [[1] * 7, [2]]}, cutoff_len=5)
    assert long["input_ids"] == [[1] * 7, [2]]  # an example longer than cutoff_len is kept whole, alone


# ------------------------------------------------------------------------------------ monitor

def test_smooth_is_a_bias_corrected_ema():
    assert monitor.smooth([]) == []
    assert monitor.smooth([2.0, 4.0], weight=0.5) == [2.0, (0.25 * 2 + 0.5 * 4) / 0.75]
    assert monitor.smooth([3.0] * 50) == pytest.approx([3.0] * 50)  # a constant stays constant
    out = monitor.smooth([1.0, math.nan, 3.0], weight=0.5)
    assert math.isnan(out[1]) and out[2] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)
    with pytest.raises(ValueError, match="weight"):
        monitor.smooth([1.0], weight=1.0)


def test_loss_series_splits_train_and_eval():
    log = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.8}, {"train_runtime": 3.0}]
    assert monitor.loss_series(log) == {"steps": [1, 2], "loss": [2.0, 1.5], "eval_steps": [2], "eval_loss": [1.8]}


def _state(step, max_steps=10):
    return types.SimpleNamespace(global_step=step, max_steps=max_steps, epoch=step / max_steps,
                                 is_world_process_zero=True)


def test_jsonl_log_callback_writes_llamafactory_records(tmp_path):
    callback = monitor.JsonlLogCallback(tmp_path)
    callback.on_train_begin(None, _state(0), None)
    callback.on_log(None, _state(5), None, logs={"loss": 1.25, "learning_rate": 1e-4})
    callback.on_log(None, _state(5), None, logs={})  # nothing to write
    records = monitor.read_log(tmp_path)
    assert len(records) == 1
    assert records[0]["current_steps"] == 5 and records[0]["total_steps"] == 10 and records[0]["percentage"] == 50.0
    assert records[0]["loss"] == 1.25 and records[0]["lr"] == 1e-4 and "eval_loss" not in records[0]
    assert json.loads((tmp_path / monitor.LOG_FILE).read_text().splitlines()[0]) == records[0]
    assert monitor.read_log(tmp_path / "missing") == []


def test_abort_callback_saves_and_stops():
    control = types.SimpleNamespace(should_save=False, should_training_stop=False)
    callback = monitor.AbortCallback(stop_after=3)
    callback.on_step_end(None, _state(2), control)
    assert not control.should_training_stop and not callback.aborted
    callback.on_step_end(None, _state(3), control)
    assert control.should_save and control.should_training_stop and callback.aborted


def test_plot_loss_draws_raw_smoothed_and_eval(tmp_path):
    log = [{"step": s, "loss": 3.0 / s} for s in range(1, 6)] + [{"step": 5, "eval_loss": 1.0}]
    fig = monitor.plot_loss(log, path=tmp_path / "loss.png")
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels == ["loss (raw)", "loss (smoothed)", "eval loss"]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_trainer_arguments_leave_checkpointing_to_the_kit_without_a_warning():
    """TRL's configs switch gradient checkpointing on by default, and transformers 5.24 warns about
    that name; the kit enables checkpointing on the model itself (kit.train.accel), so the trainer's
    switch is off, set under the name the installed transformers has, and nothing warns."""
    import warnings

    from trl import DPOConfig

    from kit.train.context import StageContext

    ctx = StageContext(config=None, model=None, tokenizer=None, template=None, train_dataset=None,
                       training_args={"output_dir": "unused", "report_to": "none", "use_cpu": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        args = ctx.make_training_arguments(DPOConfig)
        asked = ctx.make_training_arguments(DPOConfig, gradient_checkpointing=True)
    assert args.gradient_checkpointing is False and asked.gradient_checkpointing is True
