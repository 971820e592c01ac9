"""cuda_graphs: the decoder's forward and backward as captured CUDA graphs (accel.DecoderGraph).

On CPU: the switch's clear errors, and the routing (capture once, replay the same shape, anything
else eagerly, gradients reach the LoRA weights, removal restores the decoder), with the capture
replaced by the uncaptured module. On a CUDA machine: a real capture trains like the same run
without it, with the same kernels (every logged loss within 0.1 %, each adapter tensor within 5 % of
its norm), also with gradient accumulation; and with logging_nan_inf_filter off, a steady step makes
the CPU wait for the GPU at most once.
"""
import os
from pathlib import Path

import pytest
import torch

from kit import env
from kit.train import TrainConfig, accel, run
from kit.train.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def graphs_config(tmp_path, name, **changes) -> TrainConfig:
    settings = dict(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=256, max_samples=48,
                    per_device_train_batch_size=1, gradient_accumulation_steps=1, learning_rate=1e-3,
                    max_steps=8, logging_steps=1, save_strategy="no", report_to="none", plot_loss=False,
                    lora_rank=8, neat_packing=True, disable_gradient_checkpointing=True, cuda_graphs=True,
                    output_dir=str(tmp_path / name))
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.mark.parametrize("changes, words", [
    ({}, "CUDA GPU"),
    ({"neat_packing": False}, "neat_packing"),
    ({"torch_compile": True}, "torch_compile"),
    ({"disable_gradient_checkpointing": False}, "disable_gradient_checkpointing"),
    ({"quantization_bit": 4}, "quantization_bit"),
    ({"flash_attn": "fa2"}, "fa2"),
])
def test_cuda_graphs_refuses_what_it_cannot_capture(tmp_path, changes, words):
    config = graphs_config(tmp_path, "x", **changes)
    device = "cpu" if not changes else "cuda"
    with pytest.raises(ConfigError, match=f"cuda_graphs.*{words}"):
        accel.check(config, device)


def test_cuda_graphs_on_cpu_fails_before_the_model_loads(tmp_path, monkeypatch):
    from kit.train import runner

    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("the model loaded"))
    with pytest.raises(ConfigError, match="cuda_graphs.*CUDA GPU"):
        run(graphs_config(tmp_path, "cpu"), device="cpu")
    assert TrainConfig.from_dict({"cuda_graphs": True}).cuda_graphs is True
    assert "cuda_graphs" not in TrainConfig(cuda_graphs=True).to_llamafactory_yaml()  # the kit's own switch


def packed_batch(tokenizer, lengths, width):
    """One neat-packed row of examples of the given lengths, padded to width, as the collator builds it."""
    ids, segs = [], []
    for n, length in enumerate(lengths, start=1):
        ids += [(7 * n + i) % 400 + 20 for i in range(length)]
        segs += [n] * length
    labels = [(-100 if i == 0 or segs[i] != segs[i - 1] else t) for i, t in enumerate(ids)]
    collator = accel.NeatPackingCollator(tokenizer, "sdpa", pad_to_multiple_of=width)
    return collator([{"input_ids": ids, "labels": labels, "attention_mask": segs}])


def test_decoder_graph_routes_training_forwards_through_one_capture(monkeypatch):
    from kit.train import methods, runner

    config = TrainConfig(lora_rank=4, lora_target="all")
    model, tokenizer = runner.load_model(config, "cpu")
    model = methods.apply_method(model, config)
    model.config.use_cache = False
    captured = []

    def fake_capture(module, args, num_warmup_iters=3):  # the uncaptured module: same maths, eager
        captured.append(tuple(a.shape for a in args))
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake_capture)
    monkeypatch.setattr(accel.DecoderGraph, "needs_cuda", False)
    batch = packed_batch(tokenizer, [20, 30, 10], width=64)
    model.train()

    def loss_and_grads(b):
        model.zero_grad()
        loss = model(**b).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    eager_loss, eager_grads = loss_and_grads(batch)
    graph = accel.DecoderGraph(model, accumulation_steps=2)
    assert graph.decoder is model.get_base_model().model
    assert len(graph.hooks) == len(eager_grads)  # accumulation: every trainable weight's gradient is copied
    for _ in range(2):
        loss, grads = loss_and_grads(batch)
        assert loss == pytest.approx(eager_loss, rel=1e-6)
        assert all(torch.allclose(grads[n], eager_grads[n], atol=1e-7) for n in eager_grads)
    assert (graph.captures, graph.replays, graph.eager_calls, captured) == (1, 2, 0, [((1, 64), (1, 1, 64, 64), (1, 64))])

    loss_and_grads(packed_batch(tokenizer, [20, 30], width=128))  # another shape: eager, counted
    with torch.no_grad():
        model.eval()
        model(**batch)  # evaluation: eager, not counted as a training forward
        model.train()
    assert (graph.captures, graph.replays, graph.eager_calls) == (1, 2, 1)
    graph.remove()
    assert "forward" not in graph.decoder.__dict__ and graph.hooks == []
    assert loss_and_grads(batch)[0] == pytest.approx(eager_loss, rel=1e-6)
    assert graph.replays == 2


def test_graph_decoder_is_off_unless_asked():
    assert accel.graph_decoder(object(), TrainConfig()) is None


# ------------------------------------------------------------------------------- on a GPU

def gpu_model_folder(tmp_path_factory) -> str:
    """A model folder for the GPU check: KIT_GPU_TEST_MODEL when set, else the SmolLM2-135M
    architecture with random weights and the built-in tokenizer (KIT_TOKENIZER_DIR, or the built-in
    model's own folder)."""
    if os.environ.get("KIT_GPU_TEST_MODEL"):
        return os.environ["KIT_GPU_TEST_MODEL"]
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import train_throughput as bench

    tok = bench.tokenizer_source(os.environ.get("KIT_TOKENIZER_DIR"))
    return str(bench.build_model_folder("SmolLM2-135M", tmp_path_factory.mktemp("smol"), tok))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("accumulation", [1, 2])
def test_cuda_graphs_train_like_the_eager_run_on_a_gpu(tmp_path, tmp_path_factory, accumulation):
    model = gpu_model_folder(tmp_path_factory)
    # the same kernels in both runs (Liger off: with it, the eager run would take Liger's fused cross-entropy
    # and the graphed run the model's own, whose rounding moved one adapter tensor by 6 % of its norm on an H200)
    common = dict(model_name_or_path=model, template="smollm2", gradient_accumulation_steps=accumulation,
                  bf16=True, enable_liger_kernel=False)
    eager = run(graphs_config(tmp_path, "eager", cuda_graphs=False, **common), device="cuda", live_plot=False)
    graphed = run(graphs_config(tmp_path, "graphed", **common), device="cuda", live_plot=False)
    assert graphed.metrics["cuda_graph_replays"] == 8 * accumulation
    assert graphed.metrics["cuda_graph_eager_forwards"] == 0
    assert len(eager.losses) == len(graphed.losses) == 8
    for a, b in zip(eager.losses, graphed.losses):
        assert b == pytest.approx(a, rel=1e-3)
    assert eager.losses[-1] != pytest.approx(eager.losses[0], rel=1e-3)  # it trained: the weights moved
    from safetensors.torch import load_file

    left = load_file(str(Path(eager.output_dir) / "adapter_model.safetensors"))
    right = load_file(str(Path(graphed.output_dir) / "adapter_model.safetensors"))
    assert left.keys() == right.keys()
    for name in left:  # Adam scales each element's step by its own gradient history, so a weight whose
        # gradient is tiny moves by about the learning rate whichever way rounding tips it: compare
        # whole tensors, not elements (on an H200 one element differed by 0.0016 of a largest 0.028, every loss equal)
        a, b = left[name].float(), right[name].float()
        assert (a - b).norm().item() <= 5e-2 * a.norm().item(), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_graphed_step_does_not_wait_for_the_gpu(tmp_path, tmp_path_factory):
    """With cuda_graphs and logging_nan_inf_filter: false, a steady step (no logging in it) makes the CPU
    wait for the GPU at most once (PyTorch's sync debug mode counts every wait; the bench's SyncCount):
    the CPU queues the next step while the GPU still works on this one."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import train_throughput as bench

    count = bench.SyncCount(start=6, steps=6)
    config = graphs_config(tmp_path, "nowait", model_name_or_path=gpu_model_folder(tmp_path_factory),
                           template="smollm2", bf16=True, enable_liger_kernel="auto", max_steps=16,
                           logging_steps=100, logging_nan_inf_filter=False)
    result = run(config, device="cuda", live_plot=False, callbacks=[bench.step_callback(count)])
    assert result.metrics["cuda_graph_replays"] == 16
    assert count.per_step is not None and count.per_step <= 1, count.places
