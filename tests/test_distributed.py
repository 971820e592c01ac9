"""Several processes: `python -m kit train --nproc 2` (torchrun, DDP over gloo on CPU) trains the same
adapter as one process with the same global batch; bad launches fail before any process starts."""
import subprocess
import sys

import pytest
import yaml

from kit import env
from kit.train import cli, distributed
from kit.train.config import TrainConfig

BASE = dict(model_name_or_path="smollm2-135m-instruct", stage="sft", finetuning_type="lora", dataset="identity",
            template="smollm2", cutoff_len=48, max_samples=8, max_steps=2, gradient_accumulation_steps=1,
            learning_rate=0.05, optim="sgd", lr_scheduler_type="constant", logging_steps=1, report_to="none",
            save_strategy="steps", save_steps=1, seed=7)


def write_config(tmp_path, name, **changes):
    values = BASE | {"output_dir": str(tmp_path / name)} | changes
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def load_adapter(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.mark.slow
def test_two_processes_train_the_same_adapter_as_one(tmp_path):
    from kit.train import runner

    # one process, batch 2  ==  two processes (gloo), batch 1 each: the same global batch of 2
    one = TrainConfig.from_yaml(write_config(tmp_path, "one", per_device_train_batch_size=2))
    runner.run(one)
    two = write_config(tmp_path, "two", per_device_train_batch_size=1)
    proc = subprocess.run([sys.executable, "-m", "kit", "train", "--nproc", "2", str(two)], cwd=env.repo_root(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("TrainResult: finished at step 2") == 1  # only rank 0 prints
    a, b = load_adapter(tmp_path / "one"), load_adapter(tmp_path / "two")
    assert a.keys() == b.keys() and a
    # plain SGD: the update is linear in the gradient (Adam's first steps are sign(gradient), which
    # would turn rounding noise on near-zero gradients into full-size differences)
    import torch

    keys = [k for k in a if "lora_B" in k]
    moved = torch.cat([a[k].flatten() for k in keys]).norm()
    diff = torch.cat([(a[k] - b[k]).flatten() for k in a]).norm()  # A and B
    assert moved > 1e-4  # training changed B (it starts at zero), so equality below means something
    assert diff < 1e-3 * moved, f"2-process adapter differs from 1-process by {diff / moved:.2e} (relative)"
    # rank 0 wrote the run folder once; the second rank wrote nothing of its own
    saved = runner.TrainResult.load(tmp_path / "two")
    assert saved.global_step == 2 and len(saved.losses) == 2
    assert (tmp_path / "two" / "checkpoint-2").is_dir()

    # resume works the same: continue the 2-process run from checkpoint-2 up to step 3
    proc = subprocess.run([sys.executable, "-m", "kit", "train", "--nproc", "2", str(two), "--resume",
                           "--set", "max_steps=3"], cwd=env.repo_root(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("TrainResult: finished at step 3") == 1
    assert runner.TrainResult.load(tmp_path / "two").global_step == 3


def test_deepspeed_without_the_package_is_a_clear_error(tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here: the missing-package error cannot happen")
    path = write_config(tmp_path, "ds", deepspeed="ds_z3_config.json")
    assert cli.main(["--nproc", "2", str(path)]) == 2
    err = capsys.readouterr().err
    assert "deepspeed" in err and "pip install deepspeed" in err and "ds_z3_config.json" in err
    assert not (tmp_path / "ds").exists()  # nothing started, nothing written


def test_more_processes_than_rows_is_a_clear_error(tmp_path, capsys):
    path = write_config(tmp_path, "few", max_samples=1)
    assert cli.main(["--nproc", "2", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 processes" in err and "only 1 training row" in err and "identity" in err


def test_bad_deepspeed_path_and_fsdp_option_name_the_field(tmp_path):
    config = TrainConfig.from_yaml(write_config(tmp_path, "x", deepspeed="nope.json"))
    with pytest.raises(ValueError, match="field 'deepspeed' = 'nope.json'.*ds_z3_config.json"):
        distributed.check_launch(config, 2)
    config = TrainConfig.from_yaml(write_config(tmp_path, "y", fsdp="full_shrd auto_wrap"))
    with pytest.raises(ValueError, match="did you mean 'full_shard'"):
        distributed.check_launch(config, 2)


def test_shipped_deepspeed_configs_are_what_their_names_say():
    import json

    folder = env.repo_root() / distributed.DEEPSPEED_DIR
    expected = {"ds_z0_config.json": (0, None), "ds_z2_config.json": (2, None),
                "ds_z2_offload_config.json": (2, "cpu"), "ds_z3_config.json": (3, None),
                "ds_z3_offload_config.json": (3, "cpu")}
    for name, (stage, offload) in expected.items():
        zero = json.loads((folder / name).read_text())["zero_optimization"]
        assert zero["stage"] == stage, name
        assert zero.get("offload_optimizer", {}).get("device") == offload, name


def test_launch_command_is_torchrun_on_this_python():
    command = distributed.launch_command("run.yaml", 3, ["--resume"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=3" in command and "--standalone" in command
    assert command[command.index("-m", 3):] == ["-m", "kit", "train", "run.yaml", "--resume"]
    assert cli.distributed_args(["--nproc", "2", "run.yaml", "--set", "max_steps=3", "--resume"], "run.yaml") == \
        ["--set", "max_steps=3", "--resume"]


def test_ddp_does_not_broadcast_buffers_before_every_forward(monkeypatch):
    """Under DDP (more than one process, no DeepSpeed or FSDP) the kit turns off DDP's buffer broadcast,
    a collective before every forward; a single process and the sharded engines keep their defaults."""
    from kit.train import distributed

    assert "ddp_broadcast_buffers" not in distributed.training_arguments(TrainConfig(), "cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = distributed.training_arguments(TrainConfig(), "cuda")
    assert args["ddp_broadcast_buffers"] is False and args["ddp_backend"] == "nccl"
    assert args["ddp_find_unused_parameters"] is False  # LoRA: frozen weights have no gradient
    fsdp = distributed.training_arguments(TrainConfig(fsdp="full_shard auto_wrap", finetuning_type="full"), "cuda")
    assert "ddp_broadcast_buffers" not in fsdp and "ddp_find_unused_parameters" not in fsdp
