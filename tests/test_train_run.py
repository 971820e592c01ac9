"""Real training runs on the built-in model on CPU: each method, safety, resume, ensure_run, CLI."""
import json
import math
import threading

import pytest
from transformers import TrainerCallback

from kit import env
from kit.train import TrainConfig, ensure_run, monitor, run
from kit.train.runner import CONFIG_FILE, RESULT_FILE


def tiny(tmp_path, name="run", **changes) -> TrainConfig:
    """A 3-step SFT run on the first 8 identity rows at cutoff 64 (a few seconds per step on CPU)."""
    settings = dict(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=64, max_samples=8,
                    per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-4,
                    max_steps=3, logging_steps=1, save_steps=100, report_to="none",
                    output_dir=str(tmp_path / name))
    settings.update(changes)
    return TrainConfig(**settings)


def check_finished(result, steps=3):
    assert result.global_step == steps and not result.interrupted
    assert len(result.losses) >= steps and all(math.isfinite(x) and x > 0 for x in result.losses)
    out = result.output_dir
    records = monitor.read_log(out)
    assert [r["current_steps"] for r in records if "loss" in r][-1] == steps
    for name in (CONFIG_FILE, RESULT_FILE, monitor.PLOT_FILE, "trainer_state.json", "llamafactory_config.yaml"):
        assert (result_path := __import__("pathlib").Path(out) / name).exists(), result_path


@pytest.mark.slow
@pytest.mark.parametrize("method, changes, weights_file", [
    ("full", dict(finetuning_type="full", learning_rate=1e-5, save_strategy="no"), "model.safetensors"),
    ("freeze", dict(finetuning_type="freeze", freeze_trainable_layers=2, save_strategy="no"), "model.safetensors"),
    ("lora", dict(finetuning_type="lora", lora_rank=4), "adapter_model.safetensors"),
    ("qlora4", dict(finetuning_type="lora", lora_rank=4, quantization_bit=4), "adapter_model.safetensors"),
])
def test_each_method_trains_three_steps(tmp_path, method, changes, weights_file):
    result = run(tiny(tmp_path, method, **changes))
    check_finished(result)
    assert (tmp_path / method / weights_file).exists()
    share = result.trainable_params / result.total_params
    expected = {"full": (0.99, 1.0), "freeze": (0.05, 0.3), "lora": (0.001, 0.02), "qlora4": (0.001, 0.02)}
    low, high = expected[method]
    assert low <= share <= high, (method, share)


class InterruptAt(TrainerCallback):
    """Raise KeyboardInterrupt (as Ctrl-C does) at the end of a step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_interrupt_saves_and_resume_continues_like_an_unbroken_run(tmp_path):
    straight = run(tiny(tmp_path, "straight", max_steps=4, lora_rank=4))
    config = tiny(tmp_path, "broken", max_steps=4, lora_rank=4)
    stopped = run(config, callbacks=[InterruptAt(2)])
    assert stopped.interrupted and stopped.global_step == 2
    assert stopped.checkpoint.endswith("checkpoint-2")
    assert not (tmp_path / "broken" / RESULT_FILE).exists()  # not finished
    with pytest.raises(FileExistsError, match="overwrite_output_dir"):
        run(config)  # never overwritten without the flag
    resumed = run(config, resume=True)
    assert resumed.global_step == 4 and not resumed.interrupted
    steps = [e["step"] for e in resumed.log_history if "loss" in e]
    assert steps == [1, 2, 3, 4]  # the history continues from the saved step
    # same global step, optimizer, scheduler and data order: the losses match the unbroken run
    want = {e["step"]: e["loss"] for e in straight.log_history if "loss" in e}
    got = {e["step"]: e["loss"] for e in resumed.log_history if "loss" in e}
    for step in (3, 4):
        assert got[step] == pytest.approx(want[step], rel=1e-3), (step, got, want)


@pytest.mark.slow
def test_abort_flag_saves_a_checkpoint_and_ensure_run_finishes_it(tmp_path):
    flag = threading.Event()
    config = tiny(tmp_path, "abort", max_steps=3, lora_rank=4)
    stopped = run(config, abort=flag, callbacks=[monitor.AbortCallback(flag, stop_after=1)])
    assert stopped.interrupted and stopped.global_step == 1
    assert (tmp_path / "abort" / "checkpoint-1" / "optimizer.pt").exists()
    finished = ensure_run(config)  # same settings, stopped early: continues
    assert finished.global_step == 3 and not finished.reused
    again = ensure_run(config)  # finished with the same settings: reused, no training
    assert again.reused and again.global_step == 3 and again.losses == finished.losses
    other = tiny(tmp_path, "abort", max_steps=3, lora_rank=8)
    with pytest.raises(FileExistsError, match="lora_rank"):
        ensure_run(other)


@pytest.mark.slow
def test_cli_trains_from_yaml(tmp_path):
    from kit.__main__ import main

    path = tmp_path / "cfg.yaml"
    tiny(tmp_path, "cli", max_steps=3, lora_rank=4).to_yaml(path)
    assert main(["train", str(path), "--set", "max_steps=3"]) == 0
    state = json.loads((tmp_path / "cli" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert main(["train", str(path)]) != 0 or False  # existing output_dir: refused
