"""`run(config)`: load model, data and template, build the stage's trainer, train safely, save.

    result = kit.train.run(config)                  # a new run; refuses an existing output_dir
    result = kit.train.run(config, resume=True)     # continue from output_dir's last checkpoint
    result = kit.train.ensure_run(config)           # reuse a finished identical run, else train

What lands in output_dir: kit_config.yaml (our settings), llamafactory_config.yaml (the same run for
llamafactory-cli), checkpoint-N/ folders (model or adapter + optimizer + scheduler + RNG + step),
the final model or adapter and tokenizer, trainer_state.json, trainer_log.jsonl, train_results.json,
training_loss.png, runs/ (TensorBoard) and run_result.json (written last: the run finished or was
stopped cleanly).
Stopping: Ctrl-C (KeyboardInterrupt) or setting the abort flag saves a checkpoint; the result then has
`interrupted=True` and `resume=True` continues with the same global step and optimizer state.
Not here: the stages' own data handling (kit/train/<stage>.py), the config fields (kit.train.config).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from kit import env, marker
from kit.train import accel, distributed, monitor
from kit.train.config import ConfigError, TrainConfig
from kit.train.context import StageContext, get_stage

CONFIG_FILE = "kit_config.yaml"
LF_CONFIG_FILE = "llamafactory_config.yaml"
RESULT_FILE = "run_result.json"
# settings that may change between a run and its resumption
RESUMABLE_CHANGES = {"save_strategy", "max_steps", "num_train_epochs", "save_steps", "logging_steps", "eval_steps",
                     "save_total_limit", "overwrite_output_dir", "resume_from_checkpoint", "report_to"}


@dataclass
class TrainResult:
    """What a run left behind. `log_history` is the Trainer's list of log dicts (loss, eval_loss,
    learning_rate, step, ...); `metrics` the final train metrics (train_loss, train_runtime, ...)."""

    output_dir: str
    log_history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    global_step: int = 0
    checkpoint: str | None = None
    interrupted: bool = False
    reused: bool = False
    trainable_params: int = 0
    total_params: int = 0
    config: TrainConfig | None = None

    @property
    def losses(self) -> list[float]:
        return monitor.loss_series(self.log_history)["loss"]

    @property
    def final_loss(self) -> float | None:
        losses = self.losses
        return losses[-1] if losses else None

    def plot(self, title: str = "training loss"):
        return monitor.plot_loss(self.log_history, title=title)

    def _ipython_display_(self):  # a result shown in a notebook cell shows its summary and curve
        from IPython.display import Image, display

        print(self)
        display(Image(data=monitor.figure_png(self.plot()), format="png"))

    def __str__(self) -> str:
        state = "stopped early (resume=True continues)" if self.interrupted else "finished"
        loss = f"{self.final_loss:.4f}" if self.final_loss is not None else "n/a"
        return (f"TrainResult: {state}{' (reused)' if self.reused else ''} at step {self.global_step}, "
                f"last loss {loss}, trainable {self.trainable_params:,}/{self.total_params:,} params, "
                f"output_dir {self.output_dir}")

    def save(self) -> None:
        data = {k: getattr(self, k) for k in ("log_history", "metrics", "global_step", "checkpoint",
                                               "interrupted", "trainable_params", "total_params")}
        (Path(self.output_dir) / RESULT_FILE).write_text(json.dumps(data, indent=1, default=str))

    @classmethod
    def load(cls, output_dir: str | Path) -> "TrainResult":
        output_dir = Path(output_dir)
        data = json.loads((output_dir / RESULT_FILE).read_text())
        config = TrainConfig.from_yaml(output_dir / CONFIG_FILE) if (output_dir / CONFIG_FILE).exists() else None
        return cls(output_dir=str(output_dir), config=config, **data)


# ------------------------------------------------------------------------------- helpers

def resolve_dataset_dir(dataset_dir: str) -> Path:
    """A relative dataset_dir is looked up in the current folder first, then in the repository."""
    path = Path(dataset_dir).expanduser()
    if path.is_absolute() or (path / "dataset_info.json").exists():
        return path.resolve()
    repo_path = env.repo_root() / path
    return repo_path if repo_path.exists() else path.resolve()


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(output_dir)
    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def _saved_config(output_dir: Path) -> TrainConfig | None:
    path = output_dir / CONFIG_FILE
    if not path.exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrainConfig.from_yaml(path)


def _compute_dtype(config: TrainConfig, device: str):
    """Weights' dtype: bf16 for pure_bf16; the mixed-precision dtype for (Q)LoRA's frozen base;
    fp32 otherwise (full/freeze with bf16/fp16 keep fp32 master weights and autocast)."""
    import torch

    if config.pure_bf16:
        return torch.bfloat16
    if config.finetuning_type == "lora" and (config.bf16 or config.fp16):
        return torch.bfloat16 if config.bf16 else torch.float16
    if config.quantization_bit and device.startswith("cuda"):
        return env.pick_dtype(device)
    return torch.float32


_ATTN = {"auto": None, "disabled": "eager", "sdpa": "sdpa", "fa2": "flash_attention_2"}


def load_model(config: TrainConfig, device: str | None = None):
    """(model, tokenizer) for a config: kit.models.load with its quantization and attention settings."""
    from kit import models

    device = env.pick_device(device)
    model, tokenizer = models.load(
        config.model_name_or_path, device=device, dtype=_compute_dtype(config, device),
        quantization_bit=config.quantization_bit, double_quantization=config.double_quantization,
        quant_type=config.quantization_type, attn_implementation=_ATTN[config.flash_attn],
        eval_mode=False, trust_remote_code=config.trust_remote_code)
    return model, tokenizer


def load_rows(config: TrainConfig):
    """(train rows, eval rows or None) as canonical rows from kit.data, after max_samples and val_size."""
    from kit import data

    dataset_dir = resolve_dataset_dir(config.dataset_dir)

    def load(names: str):
        return data.load_dataset(names, dataset_dir=dataset_dir, stage=config.stage,
                                 max_samples=config.max_samples, seed=config.seed)

    train = load(config.dataset)
    evaluation = load(config.eval_dataset) if config.eval_dataset else None
    if config.val_size:
        size = int(config.val_size) if config.val_size >= 1 else config.val_size
        split = train.train_test_split(test_size=size, seed=config.seed)
        train, evaluation = split["train"], split["test"]
    return train, evaluation


def training_arguments(config: TrainConfig, device: str) -> dict:
    """transformers.TrainingArguments keyword arguments for a config (see StageContext)."""
    import importlib.util

    report = [] if config.report_to == "none" else ["tensorboard", "wandb", "mlflow", "swanlab"] \
        if config.report_to == "all" else [config.report_to]
    modules = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "swanlab": "swanlab"}
    for name in report:
        if importlib.util.find_spec(modules[name]) is None:
            if config.report_to == "all":
                report.remove(name)
                continue
            raise ConfigError(f"field 'report_to' = {name!r} needs the {name} package: pip install {name} "
                              f"(or set report_to: none)")
    args = dict(
        output_dir=config.output_dir, learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps if config.warmup_steps else config.warmup_ratio,
        max_grad_norm=config.max_grad_norm, weight_decay=config.weight_decay, optim=config.optim,
        logging_steps=config.logging_steps, logging_first_step=True,
        logging_nan_inf_filter=config.logging_nan_inf_filter,
        save_strategy=config.save_strategy, save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        eval_strategy=config.eval_strategy, eval_steps=config.eval_steps,
        seed=config.seed, data_seed=config.seed, report_to=report or "none",
        bf16=config.bf16 and not config.pure_bf16, fp16=config.fp16,
        neftune_noise_alpha=config.neftune_noise_alpha or None,
        remove_unused_columns=False, label_names=["labels"], use_cpu=device == "cpu",
        dataloader_num_workers=config.dataloader_num_workers, save_only_model=False,
    )  # torch_compile: the kit compiles each decoder layer itself (accel.compile_layers), not transformers
    if config.cuda_graphs and device.startswith("cuda"):  # batches copied from pinned memory without a wait
        args["accelerator_config"] = {"non_blocking": True}  # (a blocking copy waits for the previous step)
    if config.disable_shuffling:  # else each trainer's own default (TRL's KTO needs its sequential one)
        args["train_sampling_strategy"] = "sequential"
    if config.use_galore:
        if importlib.util.find_spec("galore_torch") is None:
            raise ConfigError("field 'use_galore' = True needs the GaLore optimizer package: "
                              "pip install galore-torch (then run again)")
        args["optim"] = "galore_adamw_layerwise" if config.galore_layerwise else "galore_adamw"
        targets = [t.strip() for t in config.galore_target.split(",") if t.strip()]
        args["optim_target_modules"] = "all-linear" if targets in (["all"], []) else targets
        args["optim_args"] = (f"rank={config.galore_rank},update_proj_gap={config.galore_update_interval},"
                              f"scale={config.galore_scale},proj_type={config.galore_proj_type}")
    args.update(distributed.training_arguments(config, device))  # deepspeed / fsdp / ddp backend
    return args


def prepare_output_dir(config: TrainConfig, overwrite: bool, resume) -> str | None:
    """Check output_dir and return the checkpoint to resume from (None for a fresh run)."""
    out = Path(config.output_dir)
    busy = out.exists() and any(out.iterdir())
    checkpoint = None
    if resume or config.resume_from_checkpoint:
        from kit.train import checkpoints

        explicit = resume if isinstance(resume, str) else config.resume_from_checkpoint
        checkpoint = explicit or checkpoints.last_complete_checkpoint(out)  # skips half-written ones
        if not checkpoint or not Path(checkpoint).is_dir():
            raise FileNotFoundError(f"resume: no checkpoint-N folder (complete) to resume from in {out} "
                                    f"(got {checkpoint!r}); run without resume to start fresh")
        if explicit and (problems := checkpoints.checkpoint_problems(checkpoint)):
            raise FileNotFoundError(f"resume: {checkpoint} is incomplete ({'; '.join(problems)}); "
                                    "pass resume=True to use the last complete checkpoint")
        saved = _saved_config(out)
        if saved is not None:
            changed = {k: v for k, v in config.diff(saved).items() if k not in RESUMABLE_CHANGES}
            if changed:
                warnings.warn(f"resume: these settings differ from the run being resumed: {changed}",
                              UserWarning)
        return str(checkpoint)
    if busy:
        if not overwrite:
            found = sorted(p.name for p in out.iterdir())[:6]
            raise FileExistsError(
                f"output_dir {out} already holds a run ({', '.join(found)}). Pass overwrite_output_dir=True "
                f"to replace it, resume=True to continue from its last checkpoint, or choose another output_dir.")
        marker.check_replaceable(out, "output_dir")  # only a folder the kit made is deleted
        shutil.rmtree(out)
    return None


# ------------------------------------------------------------------------------- run

def run(config: TrainConfig, *, overwrite_output_dir: bool | None = None, resume: bool | str = False,
        abort: threading.Event | None = None, callbacks: list | None = None, live_plot: bool | None = None,
        device: str | None = None) -> TrainResult:
    """Train `config` (any stage) and return a TrainResult.

    overwrite_output_dir  replace an existing output_dir (default: config.overwrite_output_dir).
    resume                True: continue from output_dir's last checkpoint; a path: from that one.
    abort                 a threading.Event; setting it stops after the current step with a checkpoint.
    callbacks             extra transformers TrainerCallbacks.
    live_plot             redraw the loss plot in the notebook (default: when running in a notebook).
    """
    config.validate()
    device = distributed.setup(env.pick_device(device))  # this rank's device under torchrun/accelerate
    overwrite = config.overwrite_output_dir if overwrite_output_dir is None else overwrite_output_dir
    checkpoint = distributed.prepare_output_dir(prepare_output_dir, config, overwrite, resume)  # rank 0 checks
    build_trainer = get_stage(config.stage)  # fails early for an unknown or missing stage

    accel.check(config, device)  # e.g. Liger on a CPU: a clear ConfigError before anything loads
    from kit.train import checks

    forced = checks.preflight(config)  # template fit, lora_target, freeze layers: before any weights load
    if forced:
        warnings.warn(f"force_template=True: template {config.template!r} does not fit the tokenizer "
                      f"({'; '.join(forced)}); its markers are added as new tokens", UserWarning)
    train_args = training_arguments(config, device)

    from kit import templates
    from kit.train import methods

    template = templates.get(config.template)
    train_rows, eval_rows = load_rows(config)
    distributed.check_launch(config, distributed.world_size(), len(train_rows), device)
    model, tokenizer = load_model(config, device)
    from transformers import set_seed

    set_seed(config.seed)  # LoRA's random A (and any other init) depends on the seed, not on earlier runs
    accel.apply_liger(model, config, device)  # before LoRA wraps the layers, as LLaMA-Factory does
    model = methods.apply_method(model, config, quantized=bool(config.quantization_bit))
    trainable, total = methods.trainable_parameters(model)
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False  # no key/value cache while training (LLaMA-Factory does the same)
    compiled_blocks = accel.compile_layers(model, config)

    out = Path(config.output_dir)
    main = distributed.is_main_process()  # only rank 0 writes, prints and plots
    if main:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_marker(out, "run")
        config.to_yaml(out / CONFIG_FILE)
        if config.stage != "grpo":  # LLaMA-Factory has no GRPO: no LLaMA-Factory YAML for that run
            config.to_llamafactory_yaml(out / LF_CONFIG_FILE)
        (out / RESULT_FILE).unlink(missing_ok=True)

    stopper = monitor.AbortCallback(abort)
    cbs = [monitor.JsonlLogCallback(out), stopper, *(callbacks or [])]
    if main and (live_plot if live_plot is not None else monitor.in_notebook()):
        cbs.append(monitor.LivePlotCallback(title=f"{config.stage} / {config.finetuning_type}"))
    ctx = StageContext(config=config, model=model, tokenizer=tokenizer, template=template,
                       train_dataset=train_rows, eval_dataset=eval_rows, callbacks=cbs,
                       training_args=train_args,
                       peft_config=getattr(model, "peft_config", {}).get("default"))
    with _no_dataset_bars():  # trainers map their datasets once more on construction (TRL: 1-3 bars)
        trainer = build_trainer(ctx)
    if any(getattr(cb, "replaces_progress", False) for cb in callbacks or []):
        _detach_progress(trainer)  # a panel draws its own progress; transformers' would run beside it

    interrupted = False
    metrics = {}
    decoder_graph = accel.graph_decoder(model, config)  # cuda_graphs: captured at the first step
    try:
        with accel.attention_backends(config, device):
            output = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = dict(output.metrics)
        if decoder_graph is not None:  # how many training forwards replayed the graph, how many ran eagerly
            metrics.update(cuda_graph_replays=decoder_graph.replays, cuda_graph_eager_forwards=decoder_graph.eager_calls)
            if decoder_graph.eager_calls:
                print(f"cuda_graphs: {decoder_graph.eager_calls} of {decoder_graph.eager_calls + decoder_graph.replays} "
                      f"training forwards ran without the graph (another input shape or argument)")
        interrupted = stopper.aborted or stopper.flag.is_set()  # another callback may have set it
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nInterrupted at step {trainer.state.global_step}: saving a checkpoint so that "
              f"run(config, resume=True) can continue.")
        trainer._save_checkpoint(trainer.model, trial=None)  # model, optimizer, scheduler, RNG, step
    finally:
        accel.uncompile_layers(compiled_blocks)
        if decoder_graph is not None:
            decoder_graph.remove()
        model.config.use_cache = use_cache
    if not interrupted:
        trainer.save_model(str(out))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
    trainer.save_state()
    if main:
        env.follow_umask(out)  # safetensors writes adapters and checkpoints 0600; the run folder follows the umask
    history = list(trainer.state.log_history)
    if main and config.plot_loss and monitor.loss_series(history)["loss"]:
        monitor.plot_loss(history, out / monitor.PLOT_FILE, title=f"{config.stage} / {config.finetuning_type}")
    result = TrainResult(output_dir=str(out), log_history=history, metrics=metrics,
                         global_step=trainer.state.global_step, checkpoint=last_checkpoint(out),
                         interrupted=interrupted, trainable_params=trainable, total_params=total,
                         config=config)
    losses = result.losses
    if losses and not all(math.isfinite(x) for x in losses):
        warnings.warn(f"training loss became non-finite ({losses[-5:]}): lower learning_rate or use fp32",
                      UserWarning)
    if not interrupted and main:
        result.save()
    distributed.barrier()  # the run folder is complete before any rank returns
    return result


@contextlib.contextmanager
def _no_dataset_bars():
    """datasets' progress bars off for a moment (the kit's rows are encoded already; a bar per map
    call of a trainer's constructor is noise), then back as they were."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


def _detach_progress(trainer) -> None:
    """Remove transformers' progress callbacks (tqdm, or the notebook table that JupyterLab gets).
    The notebook one keeps its own step counters and fails on a resumed run that is aborted
    (`int / NoneType` in its on_train_end), and a panel running in a thread must not print tables."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    for cls in (NotebookProgressCallback, ProgressCallback, PrinterCallback):
        trainer.remove_callback(cls)


def ensure_run(config: TrainConfig, **kwargs) -> TrainResult:
    """The finished run of `config` in config.output_dir: reused when its saved settings equal
    `config`, continued when it was stopped early, trained when there is none. A folder holding a
    different run is not touched (FileExistsError naming the differences) unless
    overwrite_output_dir=True."""
    out = Path(config.output_dir)
    overwrite = kwargs.pop("overwrite_output_dir", False)
    saved = _saved_config(out)
    if saved is not None and saved.to_dict() == config.to_dict() and saved.extra == config.extra:
        if (out / RESULT_FILE).exists():
            result = TrainResult.load(out)
            result.reused = True
            return result
        from kit.train import checkpoints

        if any(not checkpoints.checkpoint_problems(c) for c in checkpoints.checkpoints(out)):
            return run(config, resume=True, **kwargs)
        overwrite = True  # our own run of these settings, stopped before its first checkpoint
    elif saved is not None and not overwrite:
        raise FileExistsError(f"ensure_run: {out} holds a run with other settings "
                              f"{config.diff(saved)} (this run vs saved); pass overwrite_output_dir=True "
                              f"to replace it or choose another output_dir")
    return run(config, overwrite_output_dir=overwrite, **kwargs)
