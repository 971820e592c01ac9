"""bench/multi_gpu.py's bookkeeping: a re-measured cell replaces its record and keeps the earlier
reading beside it, and a results file written on a GPU machine merges in without a GPU."""
import importlib.util
import json

import pytest

from kit import env

spec = importlib.util.spec_from_file_location("multi_gpu", env.repo_root() / "bench" / "multi_gpu.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def record(mode, tokens, **extra):
    return dict(model="Qwen2.5-0.5B", method="lora", mode=mode, gpus=bench.MODES[mode], status="ok",
                real_tokens_per_s=tokens, peak_gib_per_gpu=2.8, date="2026-11-29", **extra)


def test_a_re_measured_cell_keeps_its_earlier_readings():
    earlier = {"runs": [{"gpu": "G", "cells": None}], "records": [record("single", 100.0), record("ddp", 210.0)]}
    first, meta = bench.merged(earlier, [record("ddp", 180.0, timed_steps=16)], {"cells": ["x"]})
    assert [r["real_tokens_per_s"] for r in first] == [100.0, 180.0] and len(meta["runs"]) == 2
    assert first[1]["earlier_readings"] == [dict(real_tokens_per_s=210.0, peak_gib_per_gpu=2.8, timed_steps=4,
                                                 date="2026-11-29")]
    second, _ = bench.merged({"runs": meta["runs"], "records": first}, [record("ddp", 190.0, timed_steps=16)], {})
    assert [x["real_tokens_per_s"] for x in second[1]["earlier_readings"]] == [210.0, 180.0]
    failed = dict(record("ddp", None), status="failed")
    third, _ = bench.merged({"runs": [], "records": second}, [failed], {})
    assert "earlier_readings" not in third[1]  # a failed run is no reading


def test_merge_takes_the_cells_of_the_files_last_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "multi_gpu.json").write_text(json.dumps(
        {"settings": bench.SETTINGS, "runs": [{"gpu": "G"}], "records": [record("single", 100.0), record("ddp", 210.0)]}))
    device = tmp_path / "device.json"
    device.write_text(json.dumps({"runs": [{"gpu": "G"}, {"gpu": "G", "cells": ["Qwen2.5-0.5B/lora/ddp"], "seconds": 9}],
                                  "records": [record("single", 999.0), record("ddp", 200.0, timed_steps=16)]}))
    assert bench.main(["--merge", str(device), "--out", str(out)]) == 0
    data = json.loads((out / "multi_gpu.json").read_text())
    single, ddp = data["records"]
    assert single["real_tokens_per_s"] == 100.0  # not measured by the last run: the committed record stays
    assert ddp["real_tokens_per_s"] == 200.0 and ddp["earlier_readings"][0]["real_tokens_per_s"] == 210.0
    assert data["runs"][-1]["merged_from"] == "device.json" and ddp["estimated_gib_per_gpu"] > 0
    device.write_text(json.dumps({"runs": [{"gpu": "G"}], "records": []}))
    with pytest.raises(SystemExit, match="names no cells"):
        bench.main(["--merge", str(device), "--out", str(out)])


def test_repeated_cells_keep_the_median_and_every_reading():
    single, ddp = dict(model="m", method="lora", mode="single"), dict(model="m", method="lora", mode="ddp")
    rounds = [dict(single, status="ok", real_tokens_per_s=100.0, peak_gib_per_gpu=2.0),
              dict(ddp, status="ok", real_tokens_per_s=150.0, peak_gib_per_gpu=2.1),
              dict(single, status="ok", real_tokens_per_s=130.0, peak_gib_per_gpu=2.2),
              dict(ddp, status="failed", real_tokens_per_s=None, peak_gib_per_gpu=None),
              dict(single, status="ok", real_tokens_per_s=90.0, peak_gib_per_gpu=2.0),
              dict(ddp, status="ok", real_tokens_per_s=210.0, peak_gib_per_gpu=2.1)]
    one, two = bench.combine_repeats([single, ddp], rounds)
    assert one["real_tokens_per_s"] == 100.0 and one["repeat_readings"] == [100.0, 130.0, 90.0]
    assert one["peak_gib_per_gpu"] == 2.2 and one["repeats_failed"] == 0
    assert two["real_tokens_per_s"] == 180.0 and two["repeats_failed"] == 1  # median of two: their mean
    never = bench.combine_repeats([single], [dict(single, status="deadline", real_tokens_per_s=None)])
    assert never == [dict(single, status="deadline", real_tokens_per_s=None)]


def test_a_larger_batch_is_an_experiment_with_its_own_records(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--batch-size", "8", "--update", "--out", str(tmp_path)])  # never into the shared file
    with pytest.raises(SystemExit):
        bench.main(["--batch-size", "8"])  # nor into bench/results
    cell = dict(model="Qwen2.5-0.5B", method="lora", mode="ddp", gpus=2, **bench.SETTINGS)
    result = tmp_path / "r.json"
    result.write_text(json.dumps(dict(real_tokens_per_s=5.0, peak_bytes_per_gpu=2**30, trainable_params=1)))
    assert "batch_size" not in bench.record_of(cell, result, tmp_path / "log")
    recorded = bench.record_of(dict(cell, batch_size=8), result, tmp_path / "log")
    assert recorded["batch_size"] == 8
    bench.add_estimates([recorded, plain := bench.record_of(cell, result, tmp_path / "log")])
    assert recorded["estimated_gib_per_gpu"] > plain["estimated_gib_per_gpu"]  # 4x the activations


def test_cpu_affinity_gives_each_rank_whole_cores_of_its_own(tmp_path):
    for cpu in range(8):  # 4 cores with 2 hyper-threads each: cpu c and c + 4 share core c
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0")
        (topo / "core_id").write_text(str(cpu % 4))
    first, second = (bench.core_share(r, 2, list(range(8)), str(tmp_path)) for r in (0, 1))
    assert (first, second) == ([0, 1, 4, 5], [2, 3, 6, 7])  # no core in both, siblings kept together
    assert bench.core_share(0, 2, [0, 1], str(tmp_path / "none")) == [0]  # no topology: a CPU per core
    with pytest.raises(ValueError, match="cannot be split"):
        bench.core_share(0, 2, [0], str(tmp_path / "none"))


def test_trainer_args_are_an_experiment_checked_against_transformers(tmp_path):
    errors = []

    def error(message):
        errors.append(message)
        raise SystemExit(2)

    assert bench.parse_trainer_args(["ddp_broadcast_buffers=false", "logging_nan_inf_filter=false"], error) == {
        "ddp_broadcast_buffers": False, "logging_nan_inf_filter": False}
    with pytest.raises(SystemExit):
        bench.parse_trainer_args(["ddp_broadcast_buffer=false"], error)
    assert "nearest: 'ddp_broadcast_buffers'" in errors[-1]
    with pytest.raises(SystemExit):
        bench.parse_trainer_args(["ddp_broadcast_buffers"], error)
    assert "KEY=VALUE" in errors[-1]
    with pytest.raises(SystemExit):  # never into the committed results
        bench.main(["--trainer-args", "ddp_broadcast_buffers=false", "--update", "--out", str(tmp_path)])
    cell = dict(model="Qwen2.5-0.5B", method="lora", mode="ddp", gpus=2, **bench.SETTINGS)
    result = tmp_path / "r.json"
    result.write_text(json.dumps(dict(real_tokens_per_s=5.0, peak_bytes_per_gpu=2**30, trainable_params=1)))
    recorded = bench.record_of(dict(cell, trainer_args={"ddp_broadcast_buffers": False}), result, tmp_path / "log")
    assert recorded["trainer_args"] == {"ddp_broadcast_buffers": False}
    assert "trainer_args" not in bench.record_of(cell, result, tmp_path / "log")


def test_each_cell_is_compared_with_a_single_gpu_run_of_the_same_settings():
    args = {"ddp_broadcast_buffers": False}
    old_single = record("single", 100.0)
    single = dict(record("single", 120.0, trainer_args=args), earlier_readings=[bench.reading(old_single)])
    ddp, fsdp = record("ddp", 240.0, trainer_args=args), record("fsdp", 150.0)
    assert bench.single_baseline([single, ddp, fsdp], ddp)["real_tokens_per_s"] == 120.0
    assert bench.single_baseline([single, ddp, fsdp], fsdp)["real_tokens_per_s"] == 100.0  # transformers' defaults
    assert bench.single_baseline([ddp, fsdp], ddp) is None
    assert "ddp: " in bench.summarize([single, ddp, fsdp]) and "(2.00x)" in bench.summarize([single, ddp, fsdp])
    assert "(1.50x)" in bench.summarize([single, ddp, fsdp])
