"""Reading the benchmark result files under bench/results/ (written by the scripts in bench/).

    naive = throughput_baseline(records, record)   # the naive-loop reading a throughput record is compared with
    one = single_gpu_baseline(records, record)     # the one-GPU reading a bench/multi_gpu.py record is compared with
"""
from __future__ import annotations


def throughput_baseline(records: list[dict], record: dict) -> dict | None:
    """The naive loop's reading that a bench/train_throughput.py `record` is compared with: of the naive
    record and its earlier readings, newest first, the one with the same `beside` and `commit` (measured
    beside it, in the same call), else the same `beside`, else the newest of the same `data_order` (a
    job that ran without a naive loop of its own). None when the model has no naive record."""
    naive = next((n for n in records if n["model"] == record["model"] and n["path"] == "naive"
                  and n.get("status", "ok") == "ok"), None)
    if naive is None:
        return None
    readings = [naive, *reversed(naive.get("earlier_readings", []))]
    for same in (lambda x: x.get("beside") == record.get("beside") and x.get("commit") == record.get("commit"),
                 lambda x: x.get("beside") == record.get("beside"),
                 lambda x: x.get("data_order") == record.get("data_order")):
        found = [x for x in readings if same(x)]
        if found:
            return found[0]
    return naive


def single_gpu_baseline(records: list[dict], record: dict) -> dict | None:
    """The one-GPU reading a bench/multi_gpu.py `record` is compared with: its model and method's single
    cell measured with the same TrainingArguments (`trainer_args`; a record without them ran with
    transformers' defaults): the single record itself, else the newest of its earlier readings that
    matches. None when there is no such reading."""
    single = next((r for r in records if (r["model"], r["method"], r["mode"]) == (record["model"], record["method"], "single")
                   and r.get("status") == "ok"), None)
    if single is None:
        return None
    for reading in [single, *reversed(single.get("earlier_readings", []))]:
        if reading.get("trainer_args") == record.get("trainer_args"):
            return reading
    return None
