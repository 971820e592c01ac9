"""Overwrite replaces runs only (issue 17): a folder the kit did not make (no marker file) is refused
by overwrite_output_dir / --overwrite / merge_and_save(overwrite=True) and left untouched; a folder
the kit made is replaced."""
import json

import pytest

from kit import env, export, marker
from kit.train import TrainConfig, cli, run
from kit.train.runner import prepare_output_dir


def notes_folder(tmp_path, name="mine"):
    folder = tmp_path / name
    (folder / "data").mkdir(parents=True)
    (folder / "notes.md").write_text("my notes")
    (folder / "data" / "rows.jsonl").write_text('{"instruction": "hi", "output": "yo"}\n')
    return folder


def untouched(folder) -> bool:
    return ((folder / "notes.md").read_text() == "my notes"
            and (folder / "data" / "rows.jsonl").exists() and not (folder / marker.MARKER).exists())


def tiny(folder) -> TrainConfig:
    return TrainConfig(dataset="identity", dataset_dir=str(env.data_dir()), cutoff_len=64, max_samples=8,
                       max_steps=1, report_to="none", output_dir=str(folder))


def test_marker_round_trip(tmp_path):
    assert not marker.is_kit_folder(tmp_path)
    marker.write_marker(tmp_path / "run", "run")
    assert marker.read_marker(tmp_path / "run")["kind"] == "run"
    marker.check_replaceable(tmp_path / "run")  # marked: fine
    marker.check_replaceable(tmp_path / "missing")  # nothing there: fine
    (tmp_path / "empty").mkdir()
    marker.check_replaceable(tmp_path / "empty")  # empty: nothing to lose
    (tmp_path / "file").write_text("x")
    with pytest.raises(marker.NotKitFolderError, match="is a file"):
        marker.check_replaceable(tmp_path / "file", "output_dir")


def test_overwrite_output_dir_refuses_a_folder_the_kit_did_not_make(tmp_path):
    folder = notes_folder(tmp_path)
    with pytest.raises(marker.NotKitFolderError, match=r"output_dir .*mine was not made by the kit.*notes\.md"):
        run(tiny(folder), overwrite_output_dir=True)  # refused before any model or data loads
    assert untouched(folder)
    with pytest.raises(FileExistsError, match="not made by the kit"):
        prepare_output_dir(tiny(folder), overwrite=True, resume=False)
    assert untouched(folder)


def test_overwrite_output_dir_replaces_a_kit_run(tmp_path):
    folder = tmp_path / "run"
    marker.write_marker(folder, "run")
    (folder / "checkpoint-1").mkdir()
    assert prepare_output_dir(tiny(folder), overwrite=True, resume=False) is None
    assert not folder.exists()  # replaced: the run starts from an empty folder


def test_cli_overwrite_refuses_with_a_message(tmp_path, capsys):
    folder = notes_folder(tmp_path)
    config = tmp_path / "train.yaml"
    config.write_text(f"dataset: identity\ndataset_dir: {env.data_dir()}\nmax_steps: 1\noutput_dir: {folder}\n")
    assert cli.main([str(config), "--overwrite"]) == 2
    assert "not made by the kit" in capsys.readouterr().err
    assert untouched(folder)


def test_merge_and_save_overwrite_refuses_a_folder_the_kit_did_not_make(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m-instruct",
                                                              "peft_type": "LORA"}))
    folder = notes_folder(tmp_path, "export")
    with pytest.raises(marker.NotKitFolderError, match="export_dir .*not made by the kit"):
        export.merge_and_save(adapter, folder, overwrite=True)
    assert untouched(folder)
    marked = tmp_path / "old_export"
    marker.write_marker(marked, "export")
    (marked / "model.safetensors").write_text("old")
    export._check_target(marked, adapter, overwrite=True)  # a kit export: may be replaced


def test_export_folder_permissions_follow_the_umask(tmp_path):
    import os
    import tempfile
    from pathlib import Path

    import safetensors.torch
    import torch

    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700, as merge_and_save's staging folder is made
    (folder / "shards").mkdir()
    safetensors.torch.save_file({"w": torch.zeros(2)}, folder / "shards" / "model.safetensors")
    assert (folder / "shards" / "model.safetensors").stat().st_mode & 0o777 == 0o600  # what safetensors does
    old = os.umask(0o027)
    try:
        env.follow_umask(folder)  # what merge_and_save applies to its staging folder
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o750
    assert (folder / "shards").stat().st_mode & 0o777 == 0o750
    assert (folder / "shards" / "model.safetensors").stat().st_mode & 0o777 == 0o640
