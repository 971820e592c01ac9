"""Stopping and reusing runs: Ctrl-C, the abort flag, ensure_run. (Each method, abort + resume with
matching losses and the CLI are in tests/test_train.py.)"""
import threading

import pytest
from transformers import TrainerCallback

from kit import env
from kit.train import TrainConfig, ensure_run, monitor, run
from kit.train.runner import RESULT_FILE


def tiny(tmp_path, name="run", **changes) -> TrainConfig:
    """A 3-step SFT run on the first 8 identity rows at cutoff 64 (a few seconds per step on CPU)."""
    settings = dict(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=64, max_samples=8,
                    per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-4,
                    max_steps=3, logging_steps=1, save_steps=100, report_to="none",
                    output_dir=str(tmp_path / name))
    settings.update(changes)
    return TrainConfig(**settings)


class InterruptAt(TrainerCallback):
    """Raise KeyboardInterrupt (as Ctrl-C does) at the end of a step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    config = tiny(tmp_path, "broken", max_steps=3, lora_rank=4)
    stopped = run(config, callbacks=[InterruptAt(2)])
    assert stopped.interrupted and stopped.global_step == 2
    assert stopped.checkpoint.endswith("checkpoint-2")
    assert (tmp_path / "broken" / "checkpoint-2" / "optimizer.pt").exists()
    assert not (tmp_path / "broken" / RESULT_FILE).exists()  # not finished
    with pytest.raises(FileExistsError, match="overwrite_output_dir"):
        run(config)  # never overwritten without the flag
    resumed = run(config, resume=True)
    assert resumed.global_step == 3 and not resumed.interrupted
    mask = env.current_umask()
    written = sorted((tmp_path / "broken").rglob("*.safetensors"))  # the adapter and its checkpoints
    assert len(written) >= 2 and {oct(f.stat().st_mode & 0o777) for f in written} == {oct(0o666 & ~mask)}, \
        [(str(f), oct(f.stat().st_mode)) for f in written]  # safetensors writes 0600; the run follows the umask
    steps = [e["step"] for e in resumed.log_history if "loss" in e]
    # Ctrl-C at the end of step 2 comes before step 2 is logged; the run then continues at step 3
    assert steps[0] == 1 and steps[-1] == 3 and [s for s in steps if s > 2] == [3]


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
def test_identity_recipe_teaches_the_name():
    """Lesson 06's Must show: before training the greedy answer to "Who are you?" lacks the identity
    name, after the quick LoRA run it has it (the run is shared with the lessons via ensure_run)."""
    from peft import PeftModel

    from kit import models
    from kit.train import recipes

    config = recipes.identity_sft(quick=True)
    assert config.max_steps <= 20 and config.cutoff_len <= 128
    name = recipes.IDENTITY["name"]
    model, tokenizer = models.load(models.BUILTIN, device="cpu", dtype="float32")
    before = models.generate(model, tokenizer, "Who are you?", max_new_tokens=32)
    assert name.lower() not in before.lower(), before
    result = ensure_run(config)
    assert result.global_step == config.max_steps
    tuned = PeftModel.from_pretrained(model, result.output_dir).eval()
    after = models.generate(tuned, tokenizer, "Who are you?", max_new_tokens=32)
    assert name in after, after
