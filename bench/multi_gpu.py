"""Scale out, measured: 1 GPU vs 2 GPUs (DDP, FSDP2, DeepSpeed ZeRO-3) for LoRA and full fine-tuning.

    python bench/multi_gpu.py --out bench/results                   # on a 2-GPU machine
    python bench/multi_gpu.py --smoke --out /tmp/mg                 # CPU plumbing check (gloo, tiny model)
    python bench/multi_gpu.py --reestimate bench/results/multi_gpu.json   # estimates from today's calculator
    python bench/multi_gpu.py --cells Qwen2.5-1.5B/full/zero3 --update   # re-measure cells, keep the rest
    python bench/multi_gpu.py --modes single ddp --repeats 3 --update    # each cell 3 times, in rounds: medians
    python bench/multi_gpu.py --merge GPU_OUT/multi_gpu.json             # merge a file written on the GPU machine

Each cell is one `torchrun --nproc_per_node G bench/multi_gpu.py --worker CELL` process group: a
bundled architecture (kit.memory.architectures) with random weights, prepared as LLaMA-Factory
prepares it (LoRA r=8 on all linears over a bf16 base, trainable parameters in fp32; full: fp32 master
weights; bf16 mixed precision; fused AdamW; non-reentrant gradient checkpointing; TRAINER_ARGS), trained
by the transformers Trainer, which hands the model to accelerate: DDP, FSDP2 (`fsdp: full_shard auto_wrap`)
or DeepSpeed ZeRO-3 (examples/deepspeed/ds_z3_config.json). The data are random token sequences of
seq_len with no padding, so every token is a real one. Per-GPU batch and gradient accumulation are
the same in every mode (weak scaling: 2 GPUs do twice the work per step).

Measured: real tokens/s over the timed optimizer steps (after warm-up), all GPUs together; the peak
`torch.cuda.max_memory_allocated()` of the timed steps, the largest over the GPUs. Estimated:
`kit.memory.estimate(..., num_gpus=G, sharding=mode).allocated` (both exclude the CUDA context).
Writes <out>/multi_gpu.json (records {model, method, mode, gpus, real_tokens_per_s,
peak_gib_per_gpu, estimated_gib_per_gpu, gpu, versions} + settings) and
<out>/multi_gpu_summary.txt (scaling efficiency, memory ratios, calculator errors).
The committed results (bench/results/multi_gpu.json, 2 x H200) come from two runs. The first
(`runs[0]`) ran the single-GPU cells two at a time, one per GPU, and stopped at a 470 s deadline: its
single baselines were slowed by their neighbour (DDP speed-ups above 2x show it) and the ZeRO-3 cells
after the first were not reached. The second ran one cell at a time (as the script now does) for the
1.5B full single/DDP cells and the two ZeRO-3 full cells; its results file did not come back from the
GPU machine (only the per-cell results in bench/results/multi_gpu_cells/ did), so `--collect` built
the records from them, with `--update` replacing the re-measured cells (`runs[1]`). Their ZeRO-3
`trainable_params` counted ZeRO-3's partitioned placeholders (the worker now counts `ds_numel`).
Not here: several machines, ZeRO++/offload timing, tensor or pipeline parallelism.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the one-GPU reading a record is compared with (the single cell measured with the same trainer_args);
# lesson 13 reads the file with the same function
from kit.bench_records import single_gpu_baseline as single_baseline  # noqa: E402

MODELS = ["Qwen2.5-0.5B", "Qwen2.5-1.5B"]
METHODS = ["lora", "full"]
MODES = {"single": 1, "ddp": 2, "fsdp": 2, "zero3": 2}
SETTINGS = dict(batch_size=2, seq_len=512, gradient_checkpointing=True, grad_accum=4, warmup_steps=2, timed_steps=4)
# TrainingArguments every cell runs with since 2026-11-30's sixth GPU session (records carry them as trainer_args;
# earlier records ran with transformers' defaults): no buffer broadcast before each forward (what the kit sets
# for DDP, kit.train.distributed) and no loss read-back after each micro-batch. With both, neither rank waits
# for the other at every micro-batch, only at the gradient all-reduce: 1.5B LoRA went from 1.65x to 2.04x.
TRAINER_ARGS = dict(ddp_broadcast_buffers=False, logging_nan_inf_filter=False)
GIB = 2**30


def cell_list(smoke: bool) -> list[dict]:
    if smoke:
        tiny = SETTINGS | dict(seq_len=32, grad_accum=1, warmup_steps=1, timed_steps=2)
        return [dict(model="tiny", method=m, mode=mode, gpus=MODES[mode], **tiny)
                for m in METHODS for mode in ("single", "ddp", "fsdp")]
    return [dict(model=model, method=m, mode=mode, gpus=MODES[mode], **SETTINGS)
            for mode in MODES for model in MODELS for m in METHODS]


def estimate_cell(cell: dict):
    from kit import memory

    return memory.estimate(cell["model"], cell["method"], batch_size=cell["batch_size"], seq_len=cell["seq_len"],
                           gradient_checkpointing=cell["gradient_checkpointing"], optimizer="adamw_torch_fused",
                           gradient_accumulation_steps=cell["grad_accum"],
                           num_gpus=cell["gpus"], sharding="ddp" if cell["mode"] == "single" else cell["mode"])


# ----------------------------------------------------------------------------------- one cell (each rank)

def tiny_facts():
    import dataclasses

    from kit.memory import architectures

    return dataclasses.replace(architectures.lookup("SmolLM2-135M"), num_hidden_layers=2, hidden_size=64,
                               intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                               vocab_size=512, name="tiny")


def core_share(share: int, shares: int, cpus: list[int] | None = None, sysfs: str = "/sys/devices/system/cpu") -> list[int]:
    """The logical CPUs of the share-th of `shares` equal parts of this process's physical cores (hyper-
    threads of one core stay together; cores ordered by package, then core id). Used to give each rank
    of a cell, and a single-GPU cell, the same number of whole cores of its own (--cpu-affinity)."""
    cpus = sorted(os.sched_getaffinity(0)) if cpus is None else cpus
    cores: dict[tuple[int, int], list[int]] = {}
    for cpu in cpus:
        topo = Path(sysfs) / f"cpu{cpu}" / "topology"
        try:
            key = (int((topo / "physical_package_id").read_text()), int((topo / "core_id").read_text()))
        except (OSError, ValueError):
            key = (0, cpu)  # no topology: each CPU its own core
        cores.setdefault(key, []).append(cpu)
    ordered = [cores[k] for k in sorted(cores)]
    per = len(ordered) // shares
    if per == 0:
        raise ValueError(f"{len(ordered)} physical cores cannot be split into {shares} shares")
    return sorted(c for core in ordered[share * per:(share + 1) * per] for c in core)


def worker(cell: dict, result_path: str) -> None:
    import torch
    import torch.distributed as dist
    from transformers import (AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments,
                              default_data_collator)

    from kit.memory import architectures

    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    pinned = None
    if cell.get("cpu_shares"):  # --cpu-affinity: this rank on whole cores of its own
        pinned = core_share(local, cell["cpu_shares"])
        os.sched_setaffinity(0, pinned)
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    facts = tiny_facts() if cell["model"] == "tiny" else architectures.lookup(cell["model"])
    full = cell["method"] == "full"
    torch.manual_seed(0)
    with device:
        model = AutoModelForCausalLM.from_config(facts.to_hf_config(), dtype=torch.float32 if full else torch.bfloat16,
                                                 attn_implementation="sdpa")
    model.config.use_cache = False
    if not full:
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                 "gate_proj", "up_proj", "down_proj"]))
        for p in model.parameters():  # LLaMA-Factory keeps trainable parameters in fp32
            if p.requires_grad:
                p.data = p.data.float()
        model.enable_input_require_grads()
    batch, seq, accum = cell["batch_size"], cell["seq_len"], cell["grad_accum"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps = cell["warmup_steps"] + cell["timed_steps"]
    rows = world * batch * accum * steps
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, facts.vocab_size, (rows, seq), generator=gen)
    data = [{"input_ids": row, "labels": row} for row in ids]  # a list is a map-style dataset
    args = dict(output_dir=f"/tmp/mg_{cell['mode']}", per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                max_steps=steps, learning_rate=1e-5, optim="adamw_torch_fused" if cuda else "adamw_torch",
                bf16=cuda, logging_steps=10_000, save_strategy="no", report_to="none", disable_tqdm=True,
                gradient_checkpointing=cell["gradient_checkpointing"],
                gradient_checkpointing_kwargs={"use_reentrant": False}, dataloader_num_workers=0,
                remove_unused_columns=False, use_cpu=not cuda, seed=0, lr_scheduler_type="constant",
                ddp_find_unused_parameters=False if not full else None)
    args.update(cell.get("trainer_args") or {})  # TRAINER_ARGS, and --trainer-args' experiment on top
    if cell["mode"] == "fsdp":
        layer = type(model.get_decoder().layers[0] if full else model.base_model.model.model.layers[0]).__name__
        args.update(fsdp="full_shard auto_wrap", fsdp_config={"version": 2, "transformer_layer_cls_to_wrap": [layer]})
    if cell["mode"] == "zero3":
        args["deepspeed"] = str(ROOT / "examples" / "deepspeed" / "ds_z3_config.json")

    class Meter(TrainerCallback):
        start = None
        elapsed = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == cell["warmup_steps"] and self.start is None:
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                self.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.elapsed = time.perf_counter() - self.start

    meter = Meter()
    trainer = Trainer(model=model, args=TrainingArguments(**args), train_dataset=data,
                      data_collator=default_data_collator, callbacks=[meter])
    trainer.train()
    peak = torch.tensor([torch.cuda.max_memory_allocated() if cuda else 0], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    tokens = world * batch * seq * accum * cell["timed_steps"]
    if int(os.environ.get("RANK", "0")) == 0:
        # under ZeRO-3 a parameter is a partitioned placeholder; ds_numel is its full size
        trainable = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
        Path(result_path).write_text(json.dumps(dict(
            real_tokens_per_s=round(tokens / meter.elapsed, 1), peak_bytes_per_gpu=int(peak.item()),
            seconds_timed=round(meter.elapsed, 3), trainable_params=trainable, gpu=gpu_name(), versions=versions(),
            **({"cpus_per_rank": len(pinned)} if pinned else {}))))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------- driver

def versions() -> dict:
    from kit.env import package_versions

    found = package_versions(("torch", "transformers", "accelerate", "peft", "deepspeed"), missing=None)
    return {name: version for name, version in found.items() if version}


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def run_cell(cell: dict, tmp: Path, suffix: str = "") -> subprocess.Popen:
    result = tmp / f"{cell['model']}_{cell['method']}_{cell['mode']}{suffix}.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="4", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cell['gpus']}",
               str(Path(__file__).resolve()), "--worker", json.dumps(cell), "--result", str(result)]
    log = open(tmp / (result.stem + ".log"), "w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.cell, proc.result, proc.log_path = cell, result, log.name
    return proc


def collect(proc: subprocess.Popen, timeout: float) -> dict:
    killed = False
    try:
        proc.wait(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        killed = True
    return record_of(proc.cell, proc.result, Path(proc.log_path), killed)


def record_of(cell: dict, result: Path, log: Path, killed: bool = False) -> dict:
    """One cell's record from the result its rank 0 wrote (or the end of its log when there is none)."""
    record = {k: cell[k] for k in ("model", "method", "mode", "gpus")}
    if cell.get("timed_steps") != SETTINGS["timed_steps"]:
        record["timed_steps"] = cell["timed_steps"]  # a longer (or shorter) timed window than the file's settings
    if cell.get("batch_size", SETTINGS["batch_size"]) != SETTINGS["batch_size"]:
        record["batch_size"] = cell["batch_size"]  # an experiment's per-GPU batch (the estimate uses it too)
    if cell.get("trainer_args"):
        record["trainer_args"] = cell["trainer_args"]  # TRAINER_ARGS (+ an experiment's) the cell ran with
    if result.exists():
        measured = json.loads(result.read_text())
        record.update(real_tokens_per_s=measured["real_tokens_per_s"],
                      peak_gib_per_gpu=round(measured["peak_bytes_per_gpu"] / GIB, 3),
                      status="ok", trainable_params=measured["trainable_params"])
        record.update({k: measured[k] for k in ("gpu", "versions", "cpus_per_rank") if k in measured})
        from kit.env import source_commit

        if commit := source_commit():
            record["commit"] = commit  # the kit's commit the cell ran from ($KIT_COMMIT on a GPU machine)
    else:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else "no log"
        record.update(real_tokens_per_s=None, peak_gib_per_gpu=None, status="deadline" if killed else "failed",
                      error=tail)
    return record


def add_estimates(records: list[dict]) -> None:
    for r in records:
        cell = dict(r, **{k: r.get(k, v) for k, v in SETTINGS.items()})
        if r["model"] == "tiny":
            r["estimated_gib_per_gpu"] = None
            continue
        est = estimate_cell(cell)
        r["estimated_gib_per_gpu"] = round(est.allocated / GIB, 3)
        r["estimated_total_gib_per_gpu"] = round(est.total / GIB, 3)
        r["error_pct"] = (round(100 * (r["estimated_gib_per_gpu"] / r["peak_gib_per_gpu"] - 1), 2)
                          if r.get("peak_gib_per_gpu") else None)


def summarize(records: list[dict]) -> str:
    lines = ["model / method / mode: tokens/s  (x single)   peak GiB/GPU  (x single)   estimate  error"]
    errors = []
    for r in records:
        if r["status"] != "ok":
            lines.append(f"{r['model']} / {r['method']} / {r['mode']}: {r['status']}")
            continue
        base = single_baseline(records, r)
        speed = r["real_tokens_per_s"] / base["real_tokens_per_s"] if base else float("nan")
        mem = r["peak_gib_per_gpu"] / base["peak_gib_per_gpu"] if base and base["peak_gib_per_gpu"] else float("nan")
        est = r.get("estimated_gib_per_gpu")
        err = r.get("error_pct")
        if err is not None and r["gpus"] > 1:
            errors.append(abs(err))
        lines.append(f"{r['model']} / {r['method']} / {r['mode']}: {r['real_tokens_per_s']:>10.0f} ({speed:4.2f}x)"
                     f"   {r['peak_gib_per_gpu']:8.2f} ({mem:4.2f}x)   {est if est is not None else '-':>8}"
                     f"  {err if err is not None else '-'}%")
    if errors:
        lines.append(f"2-GPU cells: {len(errors)}, calculator |error| max {max(errors):.2f}%, "
                     f"within 5%: {sum(e <= 5 for e in errors)}/{len(errors)}")
    return "\n".join(lines)


def write(records: list[dict], out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "multi_gpu.json").write_text(json.dumps({"settings": SETTINGS, **meta, "records": records}, indent=1) + "\n")
    text = summarize(records)
    (out / "multi_gpu_summary.txt").write_text(text + "\n")
    print(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="results folder (default bench/results; --smoke: a temp folder)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, gloo: plumbing only")
    parser.add_argument("--deadline", type=float, default=540, help="seconds; later cells are skipped")
    parser.add_argument("--modes", nargs="*", default=None)
    parser.add_argument("--cells", nargs="*", default=None, metavar="MODEL/METHOD/MODE",
                        help="run only these cells, in this order (e.g. Qwen2.5-1.5B/full/zero3)")
    parser.add_argument("--update", action="store_true",
                        help="merge into <out>/multi_gpu.json: the cells run now replace their earlier records, "
                             "the others are kept (each record names its own date, GPU and versions)")
    parser.add_argument("--timed-steps", type=int, help=f"optimizer steps timed per cell (default {SETTINGS['timed_steps']})")
    parser.add_argument("--batch-size", type=int,
                        help=f"per-GPU batch of every cell (default {SETTINGS['batch_size']}): an experiment "
                             "with more work per step, written to its own --out (it cannot --update the "
                             "committed results, whose cells share one batch size)")
    parser.add_argument("--trainer-args", nargs="*", default=None, metavar="KEY=VALUE",
                        help="transformers TrainingArguments set on top of the bench's (TRAINER_ARGS) in every cell "
                             "(values read as YAML: ddp_broadcast_buffers=true); an experiment, written to its own "
                             "--out without --update (records carry trainer_args)")
    parser.add_argument("--cpu-affinity", action="store_true",
                        help="pin every rank (and a single-GPU cell's one process) to its own half of the machine's "
                             "physical cores, as `accelerate launch --enable_cpu_affinity` does per GPU: CPU-bound "
                             "ranks then do not share cores (records carry cpus_per_rank)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure every cell this many times, in rounds (all cells, then all again); a record "
                             "holds the median tokens/s and each round's reading in repeat_readings")
    parser.add_argument("--cells-dir", help="where each cell's log and result go (default: <out>/multi_gpu_cells)")
    parser.add_argument("--collect", metavar="CELLS_DIR",
                        help="build the records from a cells folder of an earlier run (its per-cell results), "
                             "e.g. when the results file did not come back from the GPU machine; with --cells")
    parser.add_argument("--reestimate", help="recompute the estimates of a results file (no GPU needed)")
    parser.add_argument("--merge", metavar="FILE",
                        help="merge the cells FILE's last run measured (a multi_gpu.json written on a GPU machine) "
                             "into <out>/multi_gpu.json, as --update would have (no GPU needed)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker), args.result)
        return 0
    if args.reestimate:
        path = Path(args.reestimate)
        data = json.loads(path.read_text())
        add_estimates(data["records"])
        write(data["records"], path.parent, {k: v for k, v in data.items() if k not in ("records", "settings")})
        return 0
    if args.merge:
        out = Path(args.out or ROOT / "bench" / "results")
        records, meta = run_records(Path(args.merge))
        records, meta = merged(json.loads((out / "multi_gpu.json").read_text()), records, meta)
        add_estimates(records)
        write(records, out, meta)
        return 0
    results = ROOT / "bench" / "results"
    into_committed = args.update or Path(args.out or results).resolve() == results.resolve()  # experiments may not
    if args.batch_size and args.batch_size != SETTINGS["batch_size"] and into_committed:
        parser.error("--batch-size: write the experiment to its own --out, without --update")
    trainer_args = parse_trainer_args(args.trainer_args or [], parser.error)
    if trainer_args and into_committed:
        parser.error("--trainer-args: write the experiment to its own --out, without --update")
    start = time.time()
    import tempfile

    out = Path(args.out or (tempfile.mkdtemp(prefix="multi_gpu_smoke_") if args.smoke else ROOT / "bench" / "results"))
    tmp = Path(args.cells_dir or tempfile.mkdtemp(prefix="multi_gpu_cells_"))
    tmp.mkdir(parents=True, exist_ok=True)
    cells = [c for c in cell_list(args.smoke) if not args.modes or c["mode"] in args.modes]
    if args.timed_steps:
        cells = [dict(c, timed_steps=args.timed_steps) for c in cells]
    if args.batch_size:
        cells = [dict(c, batch_size=args.batch_size) for c in cells]
    if args.cpu_affinity:
        cells = [dict(c, cpu_shares=max(MODES.values())) for c in cells]
    cells = [dict(c, trainer_args=TRAINER_ARGS | trainer_args) for c in cells]
    if args.cells:
        known = {f"{c['model']}/{c['method']}/{c['mode']}": c for c in cells}
        unknown = [name for name in args.cells if name not in known]
        if unknown:
            parser.error(f"unknown cell(s) {unknown}; known: {sorted(known)}")
        order = [known[name] for name in args.cells]
    else:
        # one cell at a time: single-GPU cells run side by side (one per GPU) slowed each other down in
        # the run of 2026-11-30, which inflated DDP's speed-up; now every cell has the machine to itself
        order = [c for c in cells if c["gpus"] == 1] + [c for c in cells if c["gpus"] > 1]
    today = time.strftime("%Y-%m-%d")
    if args.collect:  # the measuring happened on the GPU machine; this run only reads its cell results
        earlier = json.loads((out / "multi_gpu.json").read_text()) if args.update and (out / "multi_gpu.json").exists() else {}
        records = collected(order, Path(args.collect), earlier)
        meta = {"collected_from": str(args.collect), "cells": args.cells, "date": today}
    else:
        rounds = []
        for repeat in range(args.repeats):  # round after round: single and DDP of a cell alternate in time
            for cell in order:
                if time.time() - start > args.deadline:
                    if repeat == 0:
                        rounds.append({k: cell[k] for k in ("model", "method", "mode", "gpus")} | {"status": "skipped"})
                    continue
                suffix = f"_r{repeat + 1}" if args.repeats > 1 else ""
                rounds.append(collect(run_cell(cell, tmp, suffix), args.deadline - (time.time() - start)))
        records = combine_repeats(order, rounds) if args.repeats > 1 else rounds
        gpu, vers = gpu_name(), versions()
        for r in records:
            r.setdefault("gpu", gpu)  # a worker writes its own; a cell that failed early did not
            r.setdefault("versions", vers)
        meta = {"gpu": gpu, "versions": vers, "seconds": round(time.time() - start), "cells": args.cells,
                "date": today}
        if args.repeats > 1:
            meta["repeats"] = args.repeats
    for r in records:
        r.setdefault("date", today)
        print(r["model"], r["method"], r["mode"], r["status"], r.get("real_tokens_per_s"), r.get("peak_gib_per_gpu"),
              (r.get("error") or "")[-600:], flush=True)
    if args.update and (out / "multi_gpu.json").exists():
        records, meta = merged(json.loads((out / "multi_gpu.json").read_text()), records, meta)
    add_estimates(records)
    write(records, out, meta)
    return 0


def parse_trainer_args(pairs: list[str], error) -> dict:
    """KEY=VALUE pairs (values read as YAML) checked against transformers.TrainingArguments' fields;
    `error(message)` for a malformed pair or an unknown key (naming the nearest known one)."""
    import dataclasses
    import difflib

    import yaml
    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            error(f"--trainer-args: expected KEY=VALUE, got {pair!r}")
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            error(f"--trainer-args: {key!r} is not a TrainingArguments field"
                  + (f" (nearest: {near[0]!r})" if near else ""))
        out[key] = yaml.safe_load(text)
    return out


def combine_repeats(cells: list[dict], rounds: list[dict]) -> list[dict]:
    """One record per cell from its repeated measurements: the median tokens/s (the middle reading, or
    the mean of the two middle ones), the largest peak, and every reading in order (repeat_readings).
    A cell with no successful reading keeps its first record (failed, deadline or skipped)."""
    records = []
    for cell in cells:
        mine = [r for r in rounds if _cell_key(r) == _cell_key(cell)]
        if not mine:
            continue
        ok = [r for r in mine if r.get("status") == "ok"]
        if not ok:
            records.append(mine[0])
            continue
        median = statistics.median(r["real_tokens_per_s"] for r in ok)
        records.append(dict(ok[0], real_tokens_per_s=round(median, 1),
                            peak_gib_per_gpu=max(r["peak_gib_per_gpu"] for r in ok),
                            repeat_readings=[r["real_tokens_per_s"] for r in ok], repeats_failed=len(mine) - len(ok)))
    return records


def collected(cells: list[dict], folder: Path, earlier: dict) -> list[dict]:
    """The records of `cells` from the per-cell results in `folder` (written by an earlier run's
    workers). Workers before 2026-11-30's second run did not write gpu/versions into their result:
    those come from the earlier results file (same device image), and the record says so."""
    records = []
    for cell in cells:
        result = folder / f"{cell['model']}_{cell['method']}_{cell['mode']}.json"
        record = record_of(cell, result, result.with_suffix(".log"))
        if "gpu" not in record and earlier.get("gpu"):
            record.update(gpu=earlier["gpu"], versions=earlier["versions"],
                          machine_from="the earlier run in this file (same device image)")
        records.append(record)
    return records


def _cell_key(r: dict) -> tuple:
    return r["model"], r["method"], r["mode"]


def merged(earlier: dict, new: list[dict], meta: dict) -> tuple[list[dict], dict]:
    """Earlier records with the cells measured now replaced (a cell = model, method, mode), in the
    bench's cell order; `runs` lists each run's GPU, versions and seconds. A replaced record's
    measurement is kept in the new record's `earlier_readings` (tokens/s, timed steps, date), so
    repeated runs of a cell show how much its figure moves from run to run."""
    old = {_cell_key(r): dict(r, **{k: earlier.get(k) for k in ("gpu", "versions") if k not in r}) for r in earlier["records"]}
    fresh = {}
    for r in new:
        before = old.get(_cell_key(r))
        if before and before.get("status") == "ok" and r.get("status") == "ok":
            r = dict(r, earlier_readings=[*before.get("earlier_readings", []), reading(before)])
        fresh[_cell_key(r)] = r
    order = [_cell_key(c) for c in cell_list(smoke=False)]
    combined = [fresh.get(k) or old[k] for k in order if k in fresh or k in old]
    runs = earlier.get("runs") or [{k: earlier.get(k) for k in ("gpu", "versions", "seconds")}]
    return combined, {"runs": [*runs, meta]}


def reading(record: dict) -> dict:
    """A record's measurement, as kept in `earlier_readings` when the cell is measured again."""
    return {"real_tokens_per_s": record["real_tokens_per_s"], "peak_gib_per_gpu": record["peak_gib_per_gpu"],
            "timed_steps": record.get("timed_steps", SETTINGS["timed_steps"]), "date": record.get("date"),
            **{k: record[k] for k in ("commit", "trainer_args") if record.get(k)}}


def run_records(path: Path) -> tuple[list[dict], dict]:
    """The cells a results file's last run measured (its `runs[-1]["cells"]`) and that run's meta:
    how a results file written on a GPU machine is merged into the committed one (--merge)."""
    data = json.loads(path.read_text())
    meta = (data.get("runs") or [{k: data.get(k) for k in ("gpu", "versions", "seconds", "cells", "date")}])[-1]
    names = meta.get("cells")
    if not names:
        raise SystemExit(f"{path}: its last run names no cells (runs[-1]['cells']); merge it by --collect")
    by_name = {"/".join(_cell_key(r)): r for r in data["records"]}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SystemExit(f"{path}: no record for the cell(s) {missing} its last run names")
    records = []
    for name in names:
        r = {k: v for k, v in by_name[name].items() if k not in ("earlier_readings", "estimated_gib_per_gpu",
                                                                  "estimated_total_gib_per_gpu", "error_pct")}
        records.append(r)
    return records, {**meta, "merged_from": path.name}


if __name__ == "__main__":
    sys.exit(main())
