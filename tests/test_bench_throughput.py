"""bench/train_throughput.py's bookkeeping: which jobs run, how re-measured records replace old ones,
and how many packed rows the step-matched fast path puts in a step."""
import importlib.util
import json

import pytest
import torch

from kit import env

spec = importlib.util.spec_from_file_location("train_throughput", env.repo_root() / "bench" / "train_throughput.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_job_list_keeps_the_named_order_and_refuses_unknown_paths():
    assert bench.job_list(None, ["A", "B"], ["naive", "fast"]) == [
        ("A", "naive"), ("A", "fast"), ("B", "naive"), ("B", "fast")]
    assert bench.job_list(["B/fast_b16", "A/naive"], ["A", "B"], ["naive"]) == [("B", "fast_b16"), ("A", "naive")]
    with pytest.raises(SystemExit, match="fast_stepz"):
        bench.job_list(["A/fast_stepz"], [], [])
    with pytest.raises(SystemExit, match="MODEL/PATH"):
        bench.job_list(["naive"], [], [])


def test_replace_records_replaces_in_place_and_appends_new_jobs():
    earlier = [dict(model="A", path="naive", v=1), dict(model="A", path="fast", v=1), dict(model="B", path="kit", v=1)]
    new = [dict(model="A", path="fast", v=2), dict(model="C", path="naive", v=2)]
    merged = bench.replace_records(earlier, new)
    assert [(r["model"], r["path"], r["v"]) for r in merged] == [
        ("A", "naive", 1), ("A", "fast", 2), ("B", "kit", 1), ("C", "naive", 2)]


def test_fast_path_makes_about_as_many_steps_as_the_naive_loop():
    # 6,643 examples in batches of 16 -> 416 naive steps; 560 packed rows -> 1 row a step (560 steps)
    job = dict(rows=6643, packed_rows=560, settings=dict(batch_size=16))
    assert bench.equal_steps_batch(job) == 1
    job = dict(rows=6643, packed_rows=4160, settings=dict(batch_size=16))  # long rows: 10 packed rows a step
    assert bench.equal_steps_batch(job) == 10


def test_records_of_the_batch_16_fast_path_are_migrated_and_skipped_jobs_keep_old_records():
    old_fast = dict(model="A", path="fast", batch_size=16, steps=35)           # written before rows_per_step
    new_fast = dict(model="A", path="fast", batch_size=16, rows_per_step=1, steps=411, status="ok", compiled=False,
                    cuda_graphs=True, logging_nan_inf_filter=False)
    skipped = dict(model="A", path="kit", batch_size=16, status="skipped")
    earlier = [old_fast, dict(model="A", path="kit", batch_size=16, status="ok", steps=416)]
    merged = bench.replace_records(earlier, [new_fast, skipped])
    assert [(r["path"], r["steps"]) for r in merged] == [("fast_b16", 35), ("kit", 416), ("fast", 411)]
    assert merged[0]["renamed_from"] == "fast"
    # a job skipped now, with no earlier record, is kept: the file says it was not measured
    assert bench.replace_records([], [skipped]) == [skipped]


def test_step_profile_reports_the_watched_steps_only(tmp_path):
    import torch

    report = tmp_path / "profile.txt"
    profile = bench.StepProfile(start=2, steps=2, report=report)
    layer = torch.nn.Linear(8, 8)
    for index in range(6):
        profile.step_begins(index)
        layer(torch.randn(4, 8)).sum().backward()
        profile.step_ended(index)
        assert report.exists() == (index >= 3)  # written when step 3, the last watched one, ends
    text = report.read_text()
    assert text.startswith("profiled optimizer steps 2..3 (2 steps)") and "wall per step" in text
    assert "aten::addmm" in text or "aten::linear" in text


def test_fast_rn_jobs_scale_the_learning_rate_with_the_examples_per_step():
    assert bench.job_list(["A/fast_r4"], [], []) == [("A", "fast_r4")]
    assert bench.fast_rows("fast_r4") == 4 and bench.fast_rows("fast") is None and bench.fast_rows("fast_r0") is None
    job = dict(rows=6400, packed_rows=400, settings=dict(batch_size=16, learning_rate=1e-4))  # 16 examples a row
    assert bench.scaled_learning_rate(job, 1) == pytest.approx(1e-4)          # one row = one naive step's examples
    assert bench.scaled_learning_rate(job, 4) == pytest.approx(2e-4)          # 4x the examples: 2x the rate
    assert bench.scaled_learning_rate(job, 4, linear=True) == pytest.approx(4e-4)


def test_fast_variants_switch_checkpointing_and_scaling_by_name():
    assert bench.fast_variant("fast_r4_nogc_lin") == dict(rows=4, nogc=True, linear=True)
    assert bench.fast_variant("fast_r2_nogc") == dict(rows=2, nogc=True, linear=False)
    assert bench.fast_variant("fast_r2_lin_nogc") is None and bench.fast_variant("fast_b16") is None
    assert bench.job_list(["A/fast_r8_nogc"], [], []) == [("A", "fast_r8_nogc")]
    with pytest.raises(SystemExit, match="fast_rN"):
        bench.job_list(["A/fast_r8_gc"], [], [])
    job = dict(path="fast_r2_nogc", device="cuda", model_dir="m", dataset="d", dataset_dir="dd", max_samples=None,
               output_dir="o", rows=6400, packed_rows=400, settings=bench.RUN)
    config = bench.kit_config(job)
    assert config.per_device_train_batch_size == 2 and config.disable_gradient_checkpointing is True
    assert config.neat_packing and config.enable_liger_kernel is True
    assert config.learning_rate == pytest.approx(1e-4 * 2 ** 0.5)
    assert bench.kit_config(dict(job, path="fast_r2")).disable_gradient_checkpointing is None


def test_nocudnn_is_a_suffix_of_any_path():
    assert bench.job_list(["A/naive_nocudnn", "A/fast_r4_nogc_nocudnn"], [], []) == [
        ("A", "naive_nocudnn"), ("A", "fast_r4_nogc_nocudnn")]
    assert bench.base_path("fast_r4_nogc_nocudnn") == "fast_r4_nogc" and bench.base_path("kit") == "kit"
    with pytest.raises(SystemExit, match="_nocudnn"):
        bench.job_list(["A/slow_nocudnn"], [], [])
    job = dict(path="fast_r2_nogc_nocudnn", device="cuda", model_dir="m", dataset="d", dataset_dir="dd",
               max_samples=None, output_dir="o", rows=6400, packed_rows=400, settings=bench.RUN)
    config = bench.kit_config(job)
    assert config.per_device_train_batch_size == 2 and config.disable_gradient_checkpointing and config.neat_packing


def test_plus_key_value_sets_kit_fields_on_a_path():
    assert bench.job_list(["A/fast_r4_nogc_nocudnn+torch_compile=true"], [], []) == [
        ("A", "fast_r4_nogc_nocudnn+torch_compile=true")]
    assert bench.base_path("fast_r4_nogc_nocudnn+torch_compile=true") == "fast_r4_nogc"
    assert bench.cudnn_off("fast_nocudnn+dataloader_num_workers=2") and not bench.cudnn_off("fast+x=1_nocudnn")
    assert bench.path_settings("fast+torch_compile=true+dataloader_num_workers=2") == dict(
        torch_compile=True, dataloader_num_workers=2)
    with pytest.raises(SystemExit, match="naive loop"):
        bench.job_list(["A/naive+torch_compile=true"], [], [])
    with pytest.raises(SystemExit, match="torch_compil"):
        bench.job_list(["A/fast+torch_compil=true"], [], [])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench.job_list(["A/fast+torch_compile"], [], [])
    job = dict(path="fast_r2+dataloader_num_workers=2", device="cuda", model_dir="m", dataset="d", dataset_dir="dd",
               max_samples=None, output_dir="o", rows=6400, packed_rows=400, settings=bench.RUN)
    config = bench.kit_config(job)
    assert config.dataloader_num_workers == 2 and config.per_device_train_batch_size == 2


@pytest.mark.slow
def test_a_compiled_kit_run_trains_the_same_numbers(tmp_path):
    """The smoke bench (a 2-layer model, CPU): torch_compile (rows padded to cutoff_len) gives the
    uncompiled run's first and final loss."""
    out = tmp_path / "out"
    assert bench.main(["--smoke", "--out", str(out), "--work", str(tmp_path / "work"),
                       "--jobs", "SmolLM2-135M/fast_r2", "SmolLM2-135M/fast_r2+torch_compile=true"]) == 0
    plain, compiled = json.loads((out / "train_throughput.json").read_text())
    assert plain["status"] == compiled["status"] == "ok", (plain.get("note"), compiled.get("note"))
    assert compiled["steps"] == plain["steps"]
    assert compiled["first_loss"] == pytest.approx(plain["first_loss"], rel=1e-4)
    assert compiled["final_loss"] == pytest.approx(plain["final_loss"], rel=1e-3)


def test_step_clock_separates_the_first_steps_from_the_steady_ones():
    clock = bench.StepClock()
    clock.start = 0.0
    clock.ends = [5.0 + 0.5 * k for k in range(40)]  # a slow start (5 s), then 0.5 s a step
    figures = clock.figures()
    assert figures["steady_from_step"] == 10 and figures["steady_s_per_step"] == pytest.approx(0.5)
    assert figures["first_steps_s"] == pytest.approx(9.5)
    short = bench.StepClock()
    short.ends = [1.0] * 5
    assert short.figures() == {}  # too few steps to tell


def test_profile_names_are_plain_file_names():
    name = bench.profile_name("SmolLM2-135M", "fast+torch_compile_mode=reduce-overhead")
    assert name == "profile_SmolLM2-135M_fast__torch_compile_mode-reduce-overhead.txt"
    assert "+" not in name and "=" not in name
    assert bench.profile_name("Qwen2.5-0.5B", "naive") == "profile_Qwen2.5-0.5B_naive.txt"


def test_a_re_measured_job_keeps_its_earlier_reading():
    earlier = [dict(model="A", path="naive", status="ok", real_tokens_per_s=100.0, beside="x", steps=4, note="n")]
    new = [dict(model="A", path="naive", status="ok", real_tokens_per_s=120.0, beside="y", steps=4)]
    merged = bench.replace_records(earlier, new)
    assert len(merged) == 1 and merged[0]["real_tokens_per_s"] == 120.0
    assert merged[0]["earlier_readings"] == [dict(real_tokens_per_s=100.0, beside="x", steps=4)]
    again = bench.replace_records(merged, [dict(new[0], real_tokens_per_s=130.0)])
    assert [x["real_tokens_per_s"] for x in again[0]["earlier_readings"]] == [100.0, 120.0]
    failed = bench.replace_records(merged, [dict(model="A", path="naive", status="failed", note="oom")])
    assert failed[0]["status"] == "failed" and "earlier_readings" not in failed[0]


def test_merging_a_file_that_carries_unchanged_records_adds_no_reading():
    record = dict(model="A", path="kit", status="ok", real_tokens_per_s=100.0, steps=4)
    assert bench.replace_records([record], [dict(record)]) == [record]


def test_fast_eq_rows_are_just_long_enough_for_the_naive_number_of_steps():
    lengths = [30, 20, 50, 10, 40, 40, 25, 35]  # 250 tokens; longest 50
    features = {"input_ids": [[1] * n for n in lengths], "labels": [[1] * n for n in lengths]}
    length, rows = bench.equal_steps_row_length(features, cutoff_len=64, steps=3, multiple=16)
    assert rows <= 3 and length % 16 == 0 and length >= 64
    from kit.train.accel import pack_neat
    assert len(pack_neat(features, length - 16)["input_ids"]) > 3 or length == 64  # the shortest such length
    # an example as long as cutoff_len may have been cut: the row length is not raised
    assert bench.equal_steps_row_length(features, cutoff_len=50, steps=1) == (50, len(pack_neat(features, 50)["input_ids"]))


def test_each_job_is_compared_with_the_naive_loop_measured_beside_it():
    def naive(tokens, beside, commit, order=None):
        return dict(model="A", path="naive", status="ok", real_tokens_per_s=tokens, beside=beside, commit=commit,
                    **({"data_order": order} if order else {}))

    readings = [naive(100.0, "lessons", "c1"), naive(200.0, "other GPU 0", "c2", "mixed-once"),
                naive(300.0, "other GPU 0", "c3", "mixed-once")]
    records = bench.replace_records(bench.replace_records([readings[0]], [readings[1]]), [readings[2]])
    job = lambda **k: dict(model="A", path="fast", status="ok", **k)
    assert bench.baseline(records, job(beside="other GPU 0", commit="c2", data_order="mixed-once"))["real_tokens_per_s"] == 200.0
    assert bench.baseline(records, job(beside="other GPU 0", commit="c9", data_order="mixed-once"))["real_tokens_per_s"] == 300.0
    assert bench.baseline(records, job(beside="lessons", commit="c1"))["real_tokens_per_s"] == 100.0
    assert bench.baseline(records, job(beside="the same job on the other GPU", commit=None))["real_tokens_per_s"] == 100.0
    assert bench.baseline([], job()) is None


def test_a_fast_cg_record_with_the_fused_cross_entropy_is_renamed():
    flce = dict(model="A", path="fast_cg", status="ok", liger_kernels=["rope", "fused_linear_cross_entropy"])
    plain = dict(model="A", path="fast_cg", status="ok", liger_kernels=["rope", "cross_entropy"])
    own = dict(model="A", path="fast_cg", status="ok", liger_kernels=["rope"], logging_nan_inf_filter=False)
    assert [r["path"] for r in bench.migrated([flce, plain, own])] == ["fast_cg_flce", "fast_cg_lce", "fast"]
    assert [r["path"] for r in bench.replace_records([], [flce, plain, own])] == ["fast_cg_flce", "fast_cg_lce", "fast"]


def test_the_compiled_fast_path_and_its_variants_become_fast_compiled():
    """Before the sixth GPU session "fast" was the compiled path; its records (none carries
    logging_nan_inf_filter) and their +KEY=VALUE variants are fast_compiled now, and today's "fast"
    records, skipped jobs and other paths keep their names."""
    old = dict(model="A", status="ok", steps=545, rows_per_step=1, compiled=True)
    now = dict(model="A", status="ok", steps=411, rows_per_step=1, compiled=False, cuda_graphs=True,
               logging_nan_inf_filter=False)
    records = [dict(old, path="fast"), dict(old, path="fast+torch_compile_mode=reduce-overhead"),
               dict(old, path="fast+torch_compile=false", compiled=False), dict(now, path="fast"),
               dict(now, path="fast+dataloader_num_workers=2"), dict(model="A", path="fast", status="skipped"),
               dict(old, path="fast_r4")]
    assert [r["path"] for r in bench.migrated(records)] == [
        "fast_compiled", "fast_compiled+torch_compile_mode=reduce-overhead", "fast_compiled+torch_compile=false",
        "fast", "fast+dataloader_num_workers=2", "fast", "fast_r4"]
    assert bench.migrated(bench.migrated(records)) == bench.migrated(records)  # once renamed, stays
    job = dict(settings=bench.RUN, model_dir="m", dataset="d", dataset_dir="dd", max_samples=None, device="cuda",
               output_dir="o", eq_cutoff_len=1344, rows=6643, packed_rows=560, path="fast_compiled")
    compiled = bench.kit_config(job)
    assert compiled.torch_compile and not compiled.cuda_graphs and compiled.cutoff_len == 1024


def test_sync_count_is_silent_without_cuda_and_fast_turns_the_nan_filter_off(tmp_path):
    count = bench.SyncCount(start=0, steps=1)
    count.step_begins(0)
    count.step_ended(0)
    assert count.figures() == ({} if not torch.cuda.is_available() else count.figures())
    job = dict(settings=bench.RUN, model_dir="m", dataset="d", dataset_dir="dd", max_samples=None, device="cuda",
               output_dir=str(tmp_path), eq_cutoff_len=1344, path="fast")
    config = bench.kit_config(job)
    assert (config.cuda_graphs, config.logging_nan_inf_filter, config.cutoff_len) == (True, False, 1344)
    assert bench.kit_config(dict(job, path="kit")).logging_nan_inf_filter is True


def test_the_readme_table_takes_each_ratio_against_its_own_baseline():
    def rec(path, tokens, beside, **k):
        return dict(model="A", path=path, status="ok", real_tokens_per_s=tokens, beside=beside, commit="c", steps=4,
                    peak_gib=2.0 if path == "naive" else 0.5, first_loss=10.0, final_loss=5.0, **k)

    records = bench.replace_records([rec("naive", 100.0, "x")], [rec("naive", 50.0, "y"),
                                                                  rec("fast", 200.0, "x", rows_per_step=1, compiled=False,
                                                                      logging_nan_inf_filter=False)])
    table = bench.markdown_table(records).splitlines()
    assert table[2].startswith("| A | naive | 4 | 50 |")            # the latest naive reading
    assert "| 2.00x / 0.25x |" in table[3]                          # 200 against the naive loop beside it (100)


def test_gpu_time_counts_each_kernel_once():
    """A CPU operator carries its kernels' time as its own self device time too: only the device's own
    events count (the profiler's "Self CUDA time total")."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    events = [SimpleNamespace(device_type=DeviceType.CPU, self_device_time_total=30.0),   # aten::mm, launching it
              SimpleNamespace(device_type=DeviceType.CUDA, self_device_time_total=30.0),  # the GEMM kernel itself
              SimpleNamespace(device_type=DeviceType.CUDA, self_device_time_total=5.0)]
    assert bench.device_time_us(events) == 35.0


def test_the_readme_quotes_the_committed_results_table():
    """The README's performance table is what `--table` prints from bench/results/train_throughput.json
    (re-measuring without regenerating it fails here)."""
    records = json.loads((env.repo_root() / "bench" / "results" / "train_throughput.json").read_text())
    assert bench.markdown_table(records) in (env.repo_root() / "README.md").read_text()
