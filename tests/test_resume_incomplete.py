"""Resume past a half-written checkpoint (issue 17): the newest complete checkpoint is used, the
incomplete one is named in a warning and kept (renamed checkpoint-N.incomplete), never deleted."""
import json
import struct

import pytest

from kit import env
from kit.train import TrainConfig, checkpoints, run


def fake_checkpoint(folder, step):
    """A checkpoint folder with the files the Trainer writes (tiny but well-formed)."""
    import torch

    folder.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (folder / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    torch.save({"state": {}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


@pytest.mark.parametrize("broken, words", [
    ({"optimizer_pt": "missing"}, "optimizer.pt is missing"),
    ({"scheduler_pt": "cut"}, "scheduler.pt is not a complete torch file"),
    ({"trainer_state_json": "missing"}, "trainer_state.json is missing"),
])
def test_checkpoint_problems_name_what_is_wrong(tmp_path, broken, words):
    renamed = {k.replace("trainer_state_json", "trainer_state.json").replace("_pt", ".pt"): v for k, v in broken.items()}
    folder = fake_checkpoint(tmp_path / "checkpoint-2", 2)
    assert checkpoints.checkpoint_problems(folder) == []
    for name, how in renamed.items():
        path = folder / name
        path.unlink() if how == "missing" else path.write_bytes(path.read_bytes()[:40])
    assert any(words in p for p in checkpoints.checkpoint_problems(folder))


def test_cut_weights_are_found(tmp_path):
    folder = fake_checkpoint(tmp_path / "checkpoint-1", 1)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    assert any("cut short" in p for p in checkpoints.checkpoint_problems(folder))


def test_last_complete_checkpoint_skips_and_keeps_the_incomplete_one(tmp_path):
    fake_checkpoint(tmp_path / "checkpoint-1", 1)
    fake_checkpoint(tmp_path / "checkpoint-2", 2)
    (tmp_path / "checkpoint-2" / "optimizer.pt").unlink()
    with pytest.warns(UserWarning, match=r"skipped .*checkpoint-2 .*optimizer.pt is missing.*checkpoint-2.incomplete"):
        found = checkpoints.last_complete_checkpoint(tmp_path)
    assert found == str(tmp_path / "checkpoint-1")
    assert (tmp_path / "checkpoint-2.incomplete" / "scheduler.pt").exists()  # kept, not deleted


@pytest.mark.slow
def test_resume_with_an_incomplete_last_checkpoint_continues_from_the_previous_one(tmp_path):
    settings = dict(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=32, max_samples=4,
                    per_device_train_batch_size=2, learning_rate=1e-4, max_steps=2, save_steps=1,
                    logging_steps=1, report_to="none", lora_rank=4, output_dir=str(tmp_path / "run"))
    first = run(TrainConfig(**settings))
    assert first.global_step == 2
    broken = tmp_path / "run" / "checkpoint-2"
    optimizer = broken / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # as if killed while writing it
    with pytest.warns(UserWarning, match="skipped .*checkpoint-2 .*optimizer.pt"):
        resumed = run(TrainConfig(**{**settings, "max_steps": 3}), resume=True)
    assert resumed.global_step == 3
    steps = [e["step"] for e in resumed.log_history if "loss" in e]
    assert 2 in steps[steps.index(1) + 1:]  # step 2 was trained again, after checkpoint-1
    kept = tmp_path / "run" / "checkpoint-2.incomplete"
    assert kept.is_dir() and len((kept / "optimizer.pt").read_bytes()) == 100  # kept as it was
    assert (tmp_path / "run" / "checkpoint-3").is_dir()
