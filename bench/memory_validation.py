"""Validate kit.memory.estimate against measured GPU memory (run on a CUDA machine).

    python bench/memory_validation.py --out bench/results            # the full grid
    python bench/memory_validation.py --smoke --out /tmp/mv           # a handful of cells
    python bench/memory_validation.py --kit --out bench/results       # real kit.train.run steps

`--kit` measures real `kit.train.run` steps instead of the synthetic loop (rows with path = kit; the
synthetic rows keep path = synthetic): each cell is a TrainConfig (LoRA/full, Liger on/off, neat or
greedy packing or none, checkpointing on/off) on a random-weight model folder and the kit's SFT demo
data; the peak of step 3 is compared with `kit.memory.from_train_config` at the padded width of the
batch that step saw.

Each cell (model x method x seq_len x batch x checkpointing x attention) runs in its own process:
the model is built from its bundled config facts (kit.memory.architectures) with random weights on
the GPU, prepared the way LLaMA-Factory prepares it (trainable parameters upcast to fp32, bf16
autocast, bitsandbytes NF4 + double quantization or LLM.int8 for the linears of the decoder layers,
LoRA r=8 on all linears, fused AdamW, non-reentrant gradient checkpointing), then runs three steps
of random tokens (inference: a prefill of seq_len tokens and two decode steps with the KV cache).
The measured number is `torch.cuda.max_memory_allocated()` during the third training step (peak
statistics reset just before it); for inference, the peak over the prefill and both decode steps. max_memory_allocated excludes the CUDA context and the caching allocator's
reserve, so it is compared with `Breakdown.allocated` (the estimate without `cuda_context`).

Cells run several at a time (each process counts only its own allocations), packed so that their
estimates fit the card; a cell that fails for lack of memory while sharing is retried alone.
Models listed in HELD_OUT were never used to choose formulas or constants; the summary reports them
separately. Writes <out>/memory_validation.csv and <out>/memory_validation_summary.txt.
Not here: multi-GPU, DeepSpeed/FSDP, flash-attention-2 (not installed on the bench machine).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # train_throughput's model and data helpers

FIT_MODELS = ["SmolLM2-135M", "Qwen2.5-0.5B", "Qwen2.5-1.5B"]
HELD_OUT = ["Qwen2.5-3B", "Llama-3.2-1B", "Qwen3-0.6B", "Qwen2.5-7B"]
TRAIN_METHODS = ["full", "freeze", "lora", "qlora4", "lora8"]
# method name in the grid -> (kit.memory method, extra settings)
METHODS = {
    "inference": ("inference", {}),
    "full": ("full", {}),
    "full_bf16": ("full", {"pure_bf16": True}),
    "freeze": ("freeze", {"freeze_trainable_layers": 2}),
    "lora": ("lora", {}),
    "qlora4": ("qlora", {"quantization_bit": 4}),
    "lora8": ("qlora", {"quantization_bit": 8}),
}
FIELDS = ["model", "method", "seq_len", "batch_size", "gradient_checkpointing", "attn_implementation",
          "held_out", "status", "measured_bytes", "estimated_bytes", "error_pct", "static_bytes",
          "fwd_saved_bytes", "peak_all_steps_bytes", "trainable_params", "seconds", "gpu", "versions", "note",
          "path", "settings"]


def cell_settings(cell: dict) -> tuple[str, dict]:
    method, extra = METHODS[cell["method"]]
    settings = dict(batch_size=cell["batch_size"], seq_len=cell["seq_len"],
                    gradient_checkpointing=cell["gradient_checkpointing"],
                    attn_implementation=cell["attn_implementation"], optimizer="adamw_torch_fused", **extra)
    return method, settings


def estimate_cell(cell: dict):
    from kit import memory

    method, settings = cell_settings(cell)
    return memory.estimate(cell["model"], method, **settings)


def grid(smoke: bool = False, models: list[str] | None = None, calib: bool = False) -> list[dict]:
    """The cells: every model x method at a spread of shapes (fit models get more shapes)."""
    def cell(model, method, seq, batch, ckpt, attn="sdpa"):
        return dict(model=model, method=method, seq_len=seq, batch_size=batch, gradient_checkpointing=ckpt,
                    attn_implementation=attn)

    cells = []
    for model in models or FIT_MODELS + HELD_OUT:
        fit = model in FIT_MODELS
        if calib:
            cells += [cell(model, "inference", 512, 1, False), cell(model, "inference", 2048, 4, False),
                      cell(model, "lora8", 512, 4, False), cell(model, "lora8", 512, 4, True),
                      cell(model, "qlora4", 512, 4, False), cell(model, "lora", 2048, 1, True)]
            continue
        shapes = [(512, 1, False), (512, 4, True), (2048, 4, True)] if fit else [(512, 1, False), (2048, 4, True)]
        for method, (seq, batch, ckpt) in itertools.product(TRAIN_METHODS, shapes):
            if model == "Qwen2.5-7B" and method == "full":
                continue  # 7.6 B x 16 bytes does not fit 80 GB
            if method == "lora8" and ckpt:
                # LoRA on LLM.int8 with gradient checkpointing did not finish within minutes on the bench
                # machine (bitsandbytes 0.50, H100); measured without checkpointing instead
                seq, batch = (2048, 1) if seq == 2048 else (512, 4)
                ckpt = False
            cells.append(cell(model, method, seq, batch, ckpt))
        for seq, batch in ([(512, 1), (2048, 4)] if fit else [(2048, 4)]):
            cells.append(cell(model, "inference", seq, batch, False))
        if fit:
            cells += [cell(model, "full", 2048, 1, False), cell(model, "lora", 2048, 1, False),
                      cell(model, "full_bf16", 512, 4, True), cell(model, "lora", 1024, 2, False, "eager")]
        if model == "Qwen3-0.6B":
            cells.append(cell(model, "lora", 1024, 2, False, "eager"))
    if smoke:
        pick = [("SmolLM2-135M", m) for m in ["inference", "full", "freeze", "lora", "qlora4", "lora8"]]
        cells = [c for c in cells if (c["model"], c["method"]) in pick and c["seq_len"] == 512][:12]
    for c in cells:
        c["held_out"] = c["model"] in HELD_OUT
    return cells


# ----------------------------------------------------------------------------------- one cell

def _quantize_linears(model, bits: int, double_quantization: bool = True, device: str = "cuda"):
    """Swap each decoder-layer nn.Linear for a bitsandbytes one, as from_pretrained does.

    embed_tokens, lm_head and the norms stay in bf16 (transformers' bitsandbytes integration skips
    the output embedding; norms are not linears)."""
    import bitsandbytes as bnb
    import torch

    layers = model.model.layers
    for layer in layers:
        for parent_name, parent in list(layer.named_modules()):
            for child_name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear):
                    continue
                weight = child.weight.data
                bias = child.bias
                if bits == 4:
                    new = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=bias is not None,
                                            compute_dtype=torch.bfloat16, compress_statistics=double_quantization,
                                            quant_type="nf4", device="meta")
                    new.weight = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=double_quantization,
                                                   quant_type="nf4", blocksize=64)
                else:
                    new = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=bias is not None,
                                              has_fp16_weights=False, threshold=6.0, device="meta")
                    new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
                if bias is not None:
                    new.bias = torch.nn.Parameter(bias.data, requires_grad=False)
                if bits == 4:
                    new = new.to(device)  # Params4bit quantizes on its first move to a device
                else:
                    new.weight._quantize(torch.device(device))  # int8 rows + fp32 row scales (SCB)
                setattr(parent, child_name, new)
                del child, weight
    if device == "cuda":
        torch.cuda.empty_cache()


def run_cell(cell: dict) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from kit.memory import architectures

    t0 = time.time()
    facts = architectures.lookup(cell["model"])
    config = facts.to_hf_config()
    method = cell["method"]
    mixed = method != "inference"  # bf16 autocast over fp32 trainable parameters
    load_dtype = torch.float32 if method == "full" else torch.bfloat16  # full = AMP: fp32 master weights
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=load_dtype,
                                                 attn_implementation=cell["attn_implementation"])
    if method in ("qlora4", "lora8"):
        _quantize_linears(model, 4 if method == "qlora4" else 8)
    if cell["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = method == "inference"
    trainable = 0
    if method == "inference":
        model.eval()
        model.requires_grad_(False)
    else:
        model.train()
        if method == "freeze":  # LLaMA-Factory freeze: the last 2 layers train (all their parameters)
            model.requires_grad_(False)
            for layer in model.model.layers[-2:]:
                layer.requires_grad_(True)
        elif method in ("lora", "qlora4", "lora8"):
            from peft import LoraConfig, get_peft_model

            model.requires_grad_(False)
            lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"])
            model = get_peft_model(model, lora)
        for p in model.parameters():  # LLaMA-Factory casts trainable parameters to fp32 (not pure_bf16)
            if p.requires_grad and p.dtype != torch.float32 and method != "full_bf16":
                p.data = p.data.float()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True) if params else None
    gen = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(0, facts.vocab_size, (cell["batch_size"], cell["seq_len"]), device="cuda", generator=gen)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    static = torch.cuda.memory_allocated()
    fwd_saved = None
    measured = None
    if method == "inference":
        with torch.no_grad():
            past = None
            step_ids = ids
            for step in range(3):  # prefill, then two decode steps; the peak is the prefill's
                out = model(input_ids=step_ids, past_key_values=past, use_cache=True, logits_to_keep=1)
                past = out.past_key_values
                step_ids = out.logits[:, -1:].argmax(-1)
                del out
                if step == 0:
                    torch.cuda.synchronize()
                    fwd_saved = torch.cuda.max_memory_allocated() - static  # prefill working set + KV
            torch.cuda.synchronize()
            measured = torch.cuda.max_memory_allocated()
    else:
        for step in range(3):
            if step == 2:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mixed):
                loss = model(input_ids=ids, labels=ids).loss
            if step == 2:
                fwd_saved = torch.cuda.memory_allocated() - before
            loss.backward()
            del loss
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        measured = torch.cuda.max_memory_allocated()
    return dict(status="ok", measured_bytes=measured, static_bytes=static, fwd_saved_bytes=fwd_saved,
                trainable_params=trainable, seconds=round(time.time() - t0, 1),
                peak_all_steps_bytes=torch.cuda.memory_stats().get("allocated_bytes.all.peak"))


# ----------------------------------------------------------------------------------- kit runs

KIT_MODELS = ["SmolLM2-135M", "Qwen2.5-0.5B"]
# name -> TrainConfig changes (on top of LoRA r8, bf16, the kit's GPU defaults: checkpointing on, SDPA)
KIT_VARIANTS = {
    "lora": {},
    "lora_nockpt": {"disable_gradient_checkpointing": True},
    "lora_liger": {"enable_liger_kernel": True},
    "lora_liger_neat": {"enable_liger_kernel": True, "neat_packing": True},
    "lora_neat": {"neat_packing": True},
    "lora_packing": {"packing": True},
    "lora_liger_nockpt": {"enable_liger_kernel": True, "disable_gradient_checkpointing": True},
    "full_liger": {"finetuning_type": "full", "enable_liger_kernel": True},
}


def kit_grid(smoke: bool = False) -> list[dict]:
    cells = []
    shapes = [(512, 4)] if smoke else [(512, 8), (1024, 4)]
    for model in KIT_MODELS[:1] if smoke else KIT_MODELS:
        for variant, changes in KIT_VARIANTS.items():
            if smoke and variant not in ("lora", "lora_neat"):
                continue
            for seq, batch in shapes:
                if variant == "full_liger" and model != "SmolLM2-135M":
                    continue
                cells.append(dict(model=model, method=variant, seq_len=seq, batch_size=batch,
                                  gradient_checkpointing=not changes.get("disable_gradient_checkpointing", False),
                                  attn_implementation="sdpa", held_out=False, path="kit",
                                  settings=json.dumps(changes)))
    return cells


def kit_cell_config(cell: dict, work: Path, prep: dict, device: str):
    from kit.train import TrainConfig

    changes = json.loads(cell["settings"])
    if device != "cuda" and changes.get("enable_liger_kernel"):
        changes["enable_liger_kernel"] = "auto"
    return TrainConfig(model_name_or_path=str(work / "models" / cell["model"]), template="smollm2",
                       dataset=prep["dataset"], dataset_dir=prep["dataset_dir"], cutoff_len=cell["seq_len"],
                       max_samples=64, per_device_train_batch_size=cell["batch_size"], gradient_accumulation_steps=1,
                       learning_rate=1e-4, max_steps=3, lora_rank=8, bf16=device == "cuda", logging_steps=1,
                       save_strategy="no", report_to="none", plot_loss=False, overwrite_output_dir=True,
                       output_dir=str(work / "runs" / f"mv_{cell['model']}_{cell['method']}_{cell['seq_len']}"),
                       **changes)


def kit_row_estimate(row: dict):
    """The calculator's answer for a kit cell at the batch shape its step 3 saw ("batch B x W" in
    the note), by the bundled architecture name (the cell's model folder holds the same config)."""
    import re

    from kit import memory
    from kit.train import TrainConfig

    batch, width = map(int, re.search(r"batch (\d+) x (\d+)", row["note"]).groups())
    config = TrainConfig(model_name_or_path=row["model"], cutoff_len=int(row["seq_len"]), lora_rank=8, bf16=True,
                         per_device_train_batch_size=int(row["batch_size"]), **json.loads(row["settings"]))
    return memory.from_train_config(config, batch_size=batch, seq_len=width, device="cuda")


def kit_summary(rows: list[dict], gpu: str, vers: str) -> str:
    ok = [abs(float(r["error_pct"])) for r in rows if r.get("error_pct") not in (None, "")]
    head = (f"kit.memory against real kit.train.run steps on {gpu}; {vers}\n"
            f"measured: torch.cuda.max_memory_allocated during step 3 of kit.train.run; estimated: "
            f"kit.memory.from_train_config at the batch's padded width (Breakdown.allocated)\n")
    if not ok:
        return head + "no cell measured\n"
    return head + (f"kit cells={len(ok)}  median|err|={statistics.median(ok):.2f}%  max|err|={max(ok):.2f}%  "
                   f"within2%={sum(e <= 2 for e in ok)}  within5%={sum(e <= 5 for e in ok)}\n")


def reestimate(out: Path) -> int:
    """Recompute estimated_bytes / error_pct of the committed kit rows with the current estimator
    (no GPU needed: the measurement and the batch shape are in the row)."""
    csv_path = out / "memory_validation.csv"
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    kit_rows = []
    for r in rows:
        if r.get("path") == "kit" and r["status"] == "ok":
            est = kit_row_estimate(r)
            r["estimated_bytes"] = est.allocated
            r["note"] = r["note"].split(";")[0] + f"; peak at {est.peak_at}"
            measured = int(r["measured_bytes"])
            r["error_pct"] = round(100 * (r["estimated_bytes"] - measured) / measured, 3)
            kit_rows.append(r)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if kit_rows:
        summary = kit_summary(kit_rows, kit_rows[0]["gpu"], kit_rows[0]["versions"])
        summary += "estimates recomputed from the committed measurements with the current kit.memory\n"
        (out / "memory_validation_kit_summary.txt").write_text(summary)
        print(summary)
    return 0


def run_kit_cell(cell: dict) -> dict:
    """Three kit.train.run steps; the peak of step 3 and the batch shape it saw."""
    import torch
    from transformers import TrainerCallback

    from kit import memory
    from kit.train import run

    t0 = time.time()
    work = Path(cell["work"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = kit_cell_config(cell, work, cell["prep"], device)
    seen = {}

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            def hook(module, a, kw):
                ids = kw.get("input_ids") if kw.get("input_ids") is not None else (a[0] if a else None)
                if ids is not None:
                    seen["shape"] = list(ids.shape)
            model.register_forward_pre_hook(hook, with_kwargs=True)

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2 and device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                seen["before"] = torch.cuda.memory_allocated()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3 and device == "cuda":
                torch.cuda.synchronize()
                seen["peak"] = torch.cuda.max_memory_allocated()

    result = run(config, device=device, live_plot=False, callbacks=[Probe()])
    batch, width = seen["shape"]
    est = kit_row_estimate(dict(cell, note=f"batch {batch} x {width}"))
    return dict(status="ok", measured_bytes=seen.get("peak"), estimated_bytes=est.allocated,
                static_bytes=seen.get("before"), trainable_params=result.trainable_params,
                seconds=round(time.time() - t0, 1), note=f"batch {batch} x {width}; peak at {est.peak_at}")


def main_kit(args) -> int:
    """Measure the kit cells, merge them into <out>/memory_validation.csv (path = kit)."""
    import torch

    import train_throughput as tt

    start = time.time()
    cuda = torch.cuda.is_available() and not args.smoke
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu (smoke)"
    vers = versions()
    work = Path(args.work)
    tok = tt.tokenizer_source(args.tokenizer)
    prep = tt.prepare_data(work, tok, 1024, 1, smoke=args.smoke)
    cells = kit_grid(args.smoke)
    for model in {c["model"] for c in cells}:
        tt.build_model_folder(model, work / "models" / model, tok, smoke=args.smoke)
    rows, pending, running = [], list(cells), []
    while pending or running:
        while pending and len(running) < args.jobs and time.time() - start < args.deadline:
            cell = pending.pop(0)
            cell.update(work=str(work), prep=prep)
            running.append((launch(dict(cell, kit=True)), cell, time.time()))
        if pending and time.time() - start >= args.deadline:
            for cell in pending:
                rows.append(dict(cell, status="skipped", note="deadline reached before this cell started"))
            pending = []
        for item in list(running):
            proc, cell, started = item
            if proc.poll() is None and time.time() - started < args.cell_timeout:
                continue
            running.remove(item)
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
                result = dict(status="timeout", note=f"killed after {args.cell_timeout:.0f} s")
            else:
                result = collect(proc)
            row = {k: cell.get(k) for k in FIELDS}
            row.update(result, gpu=gpu, versions=vers, path="kit")
            if row["status"] == "ok" and row.get("measured_bytes") and row.get("estimated_bytes"):
                row["error_pct"] = round(100 * (row["estimated_bytes"] - row["measured_bytes"]) / row["measured_bytes"], 3)
            rows.append(row)
            print(f"[{time.time() - start:5.0f}s] kit {cell['model']:13s} {cell['method']:18s} s={cell['seq_len']:4d} "
                  f"b={cell['batch_size']} {row['status']:5s} measured={(row.get('measured_bytes') or 0) / 2**30:7.3f} "
                  f"est={(row.get('estimated_bytes') or 0) / 2**30:7.3f} err={row.get('error_pct')} {row.get('note', '')[:200]}",
                  flush=True)
        time.sleep(0.2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "memory_validation.csv"
    old = []
    if csv_path.exists():
        with open(csv_path, newline="") as handle:
            old = [dict(r, path=r.get("path") or "synthetic") for r in csv.DictReader(handle) if r.get("path") != "kit"]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old + rows)
    summary = kit_summary(rows, gpu, vers) + f"wall time {time.time() - start:.0f} s\n"
    (out / "memory_validation_kit_summary.txt").write_text(summary)
    print(summary)
    return 0


# ----------------------------------------------------------------------------------- driver

def versions() -> str:
    from kit.env import package_versions

    found = package_versions(("torch", "transformers", "peft", "bitsandbytes"), missing="missing")
    return " ".join(f"{name}={version}" for name, version in found.items())


def launch(cell: dict) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(cell)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def collect(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = err.strip().splitlines()[-3:] if err else []
    oom = "OutOfMemory" in err or "out of memory" in err
    return dict(status="oom" if oom else "error", note=" | ".join(tail)[-400:])


def summarize(rows: list[dict]) -> str:
    lines = []
    ok = [r for r in rows if r["status"] == "ok" and r.get("estimated_bytes")]
    for label, group in [("all", ok), ("fit models", [r for r in ok if not r["held_out"]]),
                         ("held-out models", [r for r in ok if r["held_out"]])]:
        errs = [abs(r["error_pct"]) for r in group]
        if not errs:
            lines.append(f"{label:16s} no cells")
            continue
        lines.append(f"{label:16s} cells={len(errs):3d}  median|err|={statistics.median(errs):5.2f}%  "
                     f"mean|err|={statistics.mean(errs):5.2f}%  max|err|={max(errs):5.2f}%  "
                     f"within5%={sum(e <= 5 for e in errs)}  within8%={sum(e <= 8 for e in errs)}")
    by_method = {}
    for r in ok:
        by_method.setdefault(r["method"], []).append(abs(r["error_pct"]))
    for m, errs in by_method.items():
        lines.append(f"  method {m:10s} cells={len(errs):3d} median={statistics.median(errs):5.2f}% max={max(errs):5.2f}%")
    failed = [r for r in rows if r["status"] != "ok"]
    lines.append(f"failed or skipped cells: {len(failed)}")
    for r in failed:
        lines.append(f"  {r['model']} {r['method']} s={r['seq_len']} b={r['batch_size']} "
                     f"ckpt={r['gradient_checkpointing']}: {r['status']} {r.get('note', '')[:200]}")
    worst = sorted(ok, key=lambda r: -abs(r["error_pct"]))[:8]
    lines.append("worst cells:")
    for r in worst:
        lines.append(f"  {r['model']:13s} {r['method']:9s} s={r['seq_len']:4d} b={r['batch_size']} "
                     f"ckpt={int(r['gradient_checkpointing'])} {r['attn_implementation']:5s} "
                     f"measured={r['measured_bytes'] / 2**30:7.3f} GiB est={r['estimated_bytes'] / 2**30:7.3f} GiB "
                     f"err={r['error_pct']:+.2f}%")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--smoke", action="store_true", help="a few small cells only")
    parser.add_argument("--calib", action="store_true", help="calibration cells (use with fit models only)")
    parser.add_argument("--models", nargs="*", help="restrict to these bundled models")
    parser.add_argument("--jobs", type=int, default=14, help="cells run at once")
    parser.add_argument("--budget-gib", type=float, default=74.0, help="estimated GiB allowed at once")
    parser.add_argument("--deadline", type=float, default=520.0, help="seconds; no new cell starts after")
    parser.add_argument("--cell-timeout", type=float, default=150.0, help="seconds before a cell is killed")
    parser.add_argument("--kit", action="store_true", help="measure real kit.train.run steps (path = kit)")
    parser.add_argument("--work", default="/tmp/kit_memory_validation", help="--kit: models, data, runs")
    parser.add_argument("--tokenizer", help="--kit: folder with the built-in tokenizer (default: the kit's cache)")
    parser.add_argument("--reestimate", action="store_true",
                        help="recompute the kit rows' estimates in <out>/memory_validation.csv (no GPU)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        cell = json.loads(args.worker)
        print("RESULT " + json.dumps(run_kit_cell(cell) if cell.get("kit") else run_cell(cell)), flush=True)
        return 0
    if args.reestimate:
        return reestimate(Path(args.out))
    if args.kit:
        return main_kit(args)

    import torch

    start = time.time()
    gpu = torch.cuda.get_device_name(0)
    card_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    vers = versions()
    cells = grid(args.smoke, args.models, args.calib)
    for cell in cells:
        try:
            cell["estimated_bytes"] = estimate_cell(cell).allocated
        except Exception as exc:  # report, keep going: the measurement is still worth having
            cell["estimated_bytes"] = None
            cell["note"] = f"estimate failed: {exc}"
    budget = min(args.budget_gib, card_gib - 4)
    cells = [c for c in cells if not c["estimated_bytes"] or c["estimated_bytes"] / 2**30 < card_gib - 4]
    pending = sorted(cells, key=lambda c: -(c["estimated_bytes"] or 0))
    running: list[tuple[subprocess.Popen, dict, float]] = []
    cell_timeout = args.cell_timeout
    retry_alone: list[dict] = []
    rows: list[dict] = []

    def size(c):
        return (c["estimated_bytes"] or 20 * 2**30) / 2**30 * 1.15 + 1.0

    def finish(cell, result):
        row = {k: cell.get(k) for k in FIELDS}
        row.update(result)
        row.update(gpu=gpu, versions=vers, path="synthetic")
        if row["status"] == "ok" and cell.get("estimated_bytes"):
            row["error_pct"] = round(100 * (cell["estimated_bytes"] - row["measured_bytes"]) / row["measured_bytes"], 3)
        rows.append(row)
        print(f"[{time.time() - start:5.0f}s] {cell['model']:13s} {cell['method']:9s} s={cell['seq_len']:4d} "
              f"b={cell['batch_size']} ckpt={int(cell['gradient_checkpointing'])} {cell['attn_implementation']:5s} "
              f"{row['status']:5s} measured={(row.get('measured_bytes') or 0) / 2**30:7.3f} "
              f"est={(cell.get('estimated_bytes') or 0) / 2**30:7.3f} err={row.get('error_pct')}", flush=True)

    while pending or running:
        late = time.time() - start > args.deadline
        if late:
            for cell in pending:
                finish(cell, dict(status="skipped", note="deadline reached before this cell started"))
            pending = []
        used = sum(size(c) for _, c, _ in running)
        launched = False
        for cell in list(pending):
            alone = cell.get("_alone")
            if len(running) < args.jobs and (used + size(cell) <= budget or not running) and not (alone and running):
                running.append((launch(cell), cell, time.time()))
                pending.remove(cell)
                used += size(cell)
                launched = True
                if alone:
                    break
        for item in list(running):
            proc, cell, started = item
            if proc.poll() is None and time.time() - started > cell_timeout:
                proc.kill()
                proc.communicate()
                running.remove(item)
                finish(cell, dict(status="timeout", note=f"killed after {cell_timeout:.0f} s"))
                continue
            if proc.poll() is not None:
                running.remove(item)
                result = collect(proc)
                if result["status"] == "oom" and len(running) + 1 > 1 and not cell.get("_alone"):
                    cell["_alone"] = True
                    pending.append(cell)
                    continue
                finish(cell, result)
        if not launched:
            time.sleep(0.2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = lambda r: (r["held_out"], r["model"], r["method"], r["seq_len"], r["batch_size"], r["gradient_checkpointing"])
    rows.sort(key=key)
    with open(out / "memory_validation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summary = (f"kit.memory validation on {gpu} ({card_gib:.1f} GiB); {vers}\n"
               f"measured: torch.cuda.max_memory_allocated during step 3; compared with Breakdown.allocated\n"
               f"fit models: {', '.join(FIT_MODELS)}; held-out: {', '.join(HELD_OUT)}\n"
               + summarize(rows) + f"\nwall time {time.time() - start:.0f} s\n")
    (out / "memory_validation_summary.txt").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
