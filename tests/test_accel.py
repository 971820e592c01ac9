"""The GPU path's switches on CPU: neat packing gives the unpacked loss, greedy packing does not;
Liger asked for where it cannot run is a clear ConfigError before any model loads."""
import pytest

from kit import env
from kit.train import TrainConfig, accel, run
from kit.train.config import ConfigError


def one_step(tmp_path, name, **changes) -> TrainConfig:
    """One optimizer step over the same 8 identity rows (one batch of 8), learning_rate 0."""
    settings = dict(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=256, max_samples=8,
                    per_device_train_batch_size=8, gradient_accumulation_steps=1, learning_rate=0.0,
                    max_steps=1, logging_steps=1, save_strategy="no", report_to="none", plot_loss=False,
                    lora_rank=4, output_dir=str(tmp_path / name))
    settings.update(changes)
    return TrainConfig(**settings)


def first_loss(result) -> float:
    return next(e["loss"] for e in result.log_history if "loss" in e)


@pytest.mark.slow
def test_neat_packing_gives_the_unpacked_loss_and_greedy_packing_does_not(tmp_path):
    unpacked = first_loss(run(one_step(tmp_path, "unpacked")))
    neat_result = run(one_step(tmp_path, "neat", neat_packing=True))
    neat = first_loss(neat_result)
    greedy = first_loss(run(one_step(tmp_path, "greedy", packing=True)))
    assert abs(neat - unpacked) / unpacked <= 1e-3, (neat, unpacked)
    assert abs(greedy - unpacked) / unpacked > 1e-2, (greedy, unpacked)  # examples attend to each other


def test_pack_neat_keeps_examples_apart():
    features = {"input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]], "labels": [[-100, 2, 3], [4, 5], [6, 7, 8, 9]]}
    packed = accel.pack_neat(features, cutoff_len=6)
    assert packed["input_ids"] == [[1, 2, 3, 4, 5], [6, 7, 8, 9]]
    assert packed["attention_mask"] == [[1, 1, 1, 2, 2], [1, 1, 1, 1]]
    assert packed["labels"] == [[-100, 2, 3, -100, 5], [-100, 7, 8, 9]]  # no label across a boundary
    assert accel.position_ids_from_segments([1, 1, 1, 2, 2, 0]) == [0, 1, 2, 0, 1, 0]
    mask = accel.block_diagonal_mask([[1, 1, 2, 2, 0]])[0, 0]
    assert mask.tolist() == [[True, False, False, False, False],
                             [True, True, False, False, False],
                             [False, False, True, False, False],
                             [False, False, True, True, False],
                             [False, False, False, False, True]]  # padding sees only itself


def test_packing_defaults_follow_llamafactory():
    assert accel.packing_on(TrainConfig(stage="pt")) and not accel.packing_on(TrainConfig(stage="sft"))
    assert accel.packing_on(TrainConfig(stage="sft", neat_packing=True))
    assert not accel.packing_on(TrainConfig(stage="pt", packing=False))
    assert accel.use_gradient_checkpointing(TrainConfig(), "cuda") is True  # LLaMA-Factory: on
    assert accel.use_gradient_checkpointing(TrainConfig(), "cpu") is False
    assert accel.use_gradient_checkpointing(TrainConfig(disable_gradient_checkpointing=False), "cpu") is True


def test_liger_on_cpu_is_a_clear_config_error_before_loading(tmp_path, monkeypatch):
    from kit.train import runner

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the Liger check")

    monkeypatch.setattr(runner, "load_model", no_loading)
    config = TrainConfig.from_dict({"dataset": "identity", "output_dir": str(tmp_path / "liger"),
                                    "enable_liger_kernel": "true", "report_to": "none"})
    assert config.enable_liger_kernel is True
    with pytest.raises(ConfigError, match="enable_liger_kernel.*CUDA"):
        run(config, device="cpu")


def test_liger_auto_falls_back_with_a_note(capsys):
    config = TrainConfig.from_dict({"enable_liger_kernel": "auto"})
    assert config.enable_liger_kernel == "auto"
    accel.check(config, "cpu")
    assert "enable_liger_kernel: auto -> off" in capsys.readouterr().out
    assert not accel.liger_active(config, "cpu")
    assert "enable_liger_kernel: auto" in config.to_yaml()
    with pytest.raises(ConfigError, match="enable_liger_kernel"):
        TrainConfig.from_dict({"enable_liger_kernel": "maybe"})


@pytest.mark.slow
def test_a_dataloader_worker_batches_exactly_as_the_training_process(tmp_path):
    here = first_loss(run(one_step(tmp_path, "here", neat_packing=True)))
    worker = first_loss(run(one_step(tmp_path, "worker", neat_packing=True, dataloader_num_workers=1)))
    assert worker == pytest.approx(here, rel=1e-6)


def test_torch_compile_and_dataloader_workers_are_settings_not_extras():
    from kit.train import runner

    config = TrainConfig.from_dict({"torch_compile": True, "dataloader_num_workers": 2})
    assert config.extra == {} and config.torch_compile is True and accel.compiled(config)
    args = runner.training_arguments(config, "cpu")
    assert args["dataloader_num_workers"] == 2
    assert not args.get("torch_compile")  # the kit compiles the layers itself (accel.compile_layers)
    assert not accel.compiled(TrainConfig())  # off unless asked
    with pytest.raises(ConfigError, match="dataloader_num_workers"):
        TrainConfig(dataloader_num_workers=-1).validate()


def test_a_compiled_run_pads_packed_rows_to_one_shape():
    class Tok:
        pad_token_id = 0

    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "attention_mask": [1, 1, 2]},
            {"input_ids": [8, 9], "labels": [-100, 9], "attention_mask": [1, 1]}]
    plain = accel.packing_collator(TrainConfig(cutoff_len=8), Tok(), "sdpa")(rows)
    assert plain["input_ids"].shape == (2, 3)                      # the longest row in the batch
    for config in (TrainConfig(cutoff_len=8, torch_compile=True), TrainConfig(cutoff_len=8, torch_compile_mode="default")):
        batch = accel.packing_collator(config, Tok(), "sdpa")(rows)
        assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"].shape == (2, 1, 8, 8)
        assert batch["labels"][1].tolist() == [-100, 9] + [-100] * 6 and batch["position_ids"][0].tolist()[:3] == [0, 1, 0]


def test_block_diagonal_mask_is_the_definition_on_packed_rows():
    """The band formula against the mask's definition (same example, causal; padding sees itself)."""
    import random

    import torch

    rng = random.Random(0)
    features = {"input_ids": [], "labels": []}
    for _ in range(40):
        n = rng.randint(1, 30)
        features["input_ids"].append([1] * n)
        features["labels"].append([1] * n)
    rows = accel.pack_neat(features, cutoff_len=64)["attention_mask"]
    segs = [row + [0] * (64 - len(row)) for row in rows]
    seg = torch.tensor(segs)
    same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] > 0)
    reference = ((same & torch.ones(64, 64, dtype=torch.bool).tril()) | torch.eye(64, dtype=torch.bool))[:, None]
    assert len(segs) > 5 and torch.equal(accel.block_diagonal_mask(segs), reference)
    additive = accel.block_diagonal_mask(segs[:1], torch.float32)
    assert additive.dtype == torch.float32 and torch.equal(additive == 0, reference[:1])


def test_compile_layers_compiles_each_decoder_layer_once_and_undoes_it():
    """Regional compilation on the built-in model with LoRA: every decoder layer is compiled, all
    of them share one compiled graph (the first layer's input requires grad like the others'), the
    loss and the LoRA gradients equal the eager ones, and uncompile_layers restores eager layers."""
    import torch
    import torch._dynamo.utils as dynamo_utils

    from kit import models
    from kit.train import methods

    torch.manual_seed(0)
    model, _ = models.load(models.BUILTIN, device="cpu", dtype=torch.float32, eval_mode=False)
    model = methods.apply_method(model, TrainConfig(lora_rank=4), quantized=False)
    model.config.use_cache = False
    model.train()
    segments = [[1] * 20 + [2] * 12]
    ids = torch.randint(0, 1000, (1, 32))
    positions = torch.tensor([accel.position_ids_from_segments(segments[0])])
    batch = dict(input_ids=ids, labels=ids, position_ids=positions,
                 attention_mask=accel.block_diagonal_mask(segments, positions=positions))

    def loss_and_grads():
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager_loss, eager_grads = loss_and_grads()
    assert accel.compile_layers(model, TrainConfig()) == []  # not asked: nothing compiled
    torch._dynamo.reset()
    dynamo_utils.counters.clear()
    blocks = accel.compile_layers(model, TrainConfig(torch_compile=True))
    assert len(blocks) == model.config.num_hidden_layers
    assert all(b._compiled_call_impl is not None for b in blocks)
    loss, grads = loss_and_grads()
    assert dynamo_utils.counters["stats"]["unique_graphs"] == 1  # one graph for all 30 layers
    assert loss == pytest.approx(eager_loss, rel=1e-5)
    assert grads.keys() == eager_grads.keys()
    assert max((grads[n] - eager_grads[n]).abs().max().item() for n in grads) < 1e-4
    accel.uncompile_layers(blocks)
    assert all(b._compiled_call_impl is None for b in blocks)
    torch._dynamo.reset()


def test_neat_packed_cuda_runs_train_without_cudnn_attention_and_restore_it():
    import torch

    before = torch.backends.cuda.cudnn_sdp_enabled()
    packed = TrainConfig(neat_packing=True)
    with accel.attention_backends(packed, "cuda:0"):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
    for config, device in ((TrainConfig(), "cuda"), (TrainConfig(neat_packing=True, flash_attn="sdpa"), "cuda"),
                           (packed, "cpu")):
        with accel.attention_backends(config, device):
            assert torch.backends.cuda.cudnn_sdp_enabled() == before  # PyTorch's own choice


def test_a_compiled_run_keeps_only_liger_fused_cross_entropy():
    assert accel.liger_kernels(TrainConfig(enable_liger_kernel=True)) == [
        "rope", "rms_norm", "swiglu", "fused_linear_cross_entropy"]
    assert accel.liger_kernels(TrainConfig(enable_liger_kernel=True, torch_compile=True)) == ["fused_linear_cross_entropy"]
    assert accel.liger_kernels(TrainConfig(enable_liger_kernel=True, cuda_graphs=True)) == [
        "rope", "rms_norm", "swiglu"]  # the model's own loss: no chunked vocabulary matmuls, no .item() wait


def test_disable_shuffling_takes_rows_in_order(tmp_path):
    from kit.train import runner

    config = TrainConfig(disable_shuffling=True, output_dir=str(tmp_path / "o"), report_to="none")
    assert runner.training_arguments(config, "cpu")["train_sampling_strategy"] == "sequential"
    assert "train_sampling_strategy" not in runner.training_arguments(  # each trainer's own default
        TrainConfig(output_dir=str(tmp_path / "p"), report_to="none"), "cpu")
    assert "disable_shuffling: true" in config.to_llamafactory_yaml()  # LLaMA-Factory's own argument


def test_logging_nan_inf_filter_reaches_the_trainer_and_llamafactory(tmp_path):
    """LLaMA-Factory's (transformers') argument: on by default, off when asked, exported when off; a
    graphed run on CUDA copies its batches without waiting (non_blocking), other runs keep the default."""
    from transformers import TrainingArguments

    from kit.train import runner

    config = TrainConfig.from_dict({"logging_nan_inf_filter": False, "output_dir": str(tmp_path / "o"),
                                    "report_to": "none"})
    assert config.extra == {}
    args = runner.training_arguments(config, "cpu")
    assert args["logging_nan_inf_filter"] is False and "accelerator_config" not in args
    assert TrainingArguments(**args).logging_nan_inf_filter is False
    assert runner.training_arguments(TrainConfig(output_dir=str(tmp_path / "p"), report_to="none"),
                                     "cpu")["logging_nan_inf_filter"] is True
    assert "logging_nan_inf_filter: false" in config.to_llamafactory_yaml()
    assert "logging_nan_inf_filter" not in TrainConfig().to_llamafactory_yaml()
    graphed = TrainConfig(cuda_graphs=True, neat_packing=True, output_dir=str(tmp_path / "q"), report_to="none")
    assert runner.training_arguments(graphed, "cuda")["accelerator_config"] == {"non_blocking": True}
    assert "accelerator_config" not in runner.training_arguments(graphed, "cpu")
