"""Watching a run: smoothed loss, the loss plot, trainer_log.jsonl, the abort switch and a live plot.

Pure functions first (`smooth`, `loss_series`, `plot_loss`), then transformers callbacks:
    JsonlLogCallback   appends one JSON line per log to output_dir/trainer_log.jsonl (the same keys
                       LLaMA-Factory's web UI reads: current_steps, total_steps, loss, eval_loss, lr,
                       epoch, percentage, elapsed_time, remaining_time)
    AbortCallback      stops at the end of the current step and saves a checkpoint when its flag is set
    LivePlotCallback   redraws the loss plot in a notebook output after every log
Not here: the progress bar (transformers' own ProgressCallback / NotebookProgressCallback) and
TensorBoard (transformers' TensorBoardCallback, switched on by report_to="tensorboard").
"""
from __future__ import annotations

import io
import json
import math
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

LOG_FILE = "trainer_log.jsonl"
PLOT_FILE = "training_loss.png"


def smooth(values: list[float], weight: float | None = None) -> list[float]:
    """Exponential moving average with bias correction, as TensorBoard's smoothing slider does.

    s_t = w*s_{t-1} + (1-w)*x_t, reported as s_t / (1 - w^t) so the curve starts at the first value.
    `weight` defaults to LLaMA-Factory's choice, 1.8*(sigmoid(0.05*n) - 0.5): more points, more smoothing
    (n=10 -> 0.22, n=100 -> 0.89). Non-finite values are carried through unchanged.
    """
    n = len(values)
    if n == 0:
        return []
    if weight is None:
        weight = 1.8 * (1 / (1 + math.exp(-0.05 * n)) - 0.5)
    if not 0 <= weight < 1:
        raise ValueError(f"smooth: weight = {weight} is not in [0, 1)")
    out, state, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        count += 1
        state = weight * state + (1 - weight) * value
        out.append(state / (1 - weight ** count))
    return out


def loss_series(log_history: list[dict]) -> dict:
    """Split a Trainer log_history into {"steps", "loss", "eval_steps", "eval_loss"} lists."""
    steps, loss, eval_steps, eval_loss = [], [], [], []
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            steps.append(entry["step"])
            loss.append(float(entry["loss"]))
        if "eval_loss" in entry and "step" in entry:
            eval_steps.append(entry["step"])
            eval_loss.append(float(entry["eval_loss"]))
    return {"steps": steps, "loss": loss, "eval_steps": eval_steps, "eval_loss": eval_loss}


def plot_loss(log_history: list[dict], path: str | Path | None = None, title: str = "training loss",
              lang: int = 0):
    """A matplotlib Figure of the raw and smoothed training loss (and eval loss when present);
    saved as PNG to `path` when given. Uses matplotlib's object API (no pyplot state). lang=1 labels
    the axes in Chinese (where a Chinese font is installed)."""
    from matplotlib.ticker import MaxNLocator

    from kit.plots import Figure, cjk_font, label

    if lang:
        cjk_font()  # before the figure exists: its texts take their font family when created
    series = loss_series(log_history)
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    if series["steps"]:
        ax.plot(series["steps"], series["loss"], color="tab:blue", alpha=0.35, label=label("loss (raw)", "损失（原始）", lang))
        ax.plot(series["steps"], smooth(series["loss"]), color="tab:blue", label=label("loss (smoothed)", "损失（平滑）", lang))
    if series["eval_steps"]:
        ax.plot(series["eval_steps"], series["eval_loss"], "o-", color="tab:orange", label=label("eval loss", "验证损失", lang))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel(label("step", "步数", lang))
    ax.set_ylabel(label("loss (cross-entropy, nats/token)", "损失（交叉熵，nats/token）", lang))
    ax.set_title(title)
    if series["steps"] or series["eval_steps"]:
        ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png")
    return fig


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def read_log(output_dir: str | Path) -> list[dict]:
    """The records of output_dir/trainer_log.jsonl (empty list if there is none)."""
    path = Path(output_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a live plot can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class JsonlLogCallback(TrainerCallback):
    """Append every log (train and eval) to output_dir/trainer_log.jsonl, with progress and timing."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / LOG_FILE
        self.start = None
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()
        self.start_step = state.global_step  # > 0 when resuming

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.time() - (self.start or time.time())
        done = max(state.global_step - self.start_step, 1)
        remaining = elapsed / done * max(state.max_steps - state.global_step, 0)
        record = {
            "current_steps": state.global_step,
            "total_steps": state.max_steps,
            "loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "lr": logs.get("learning_rate"),
            "epoch": round(state.epoch or 0.0, 4),
            "percentage": round(100 * state.global_step / max(state.max_steps, 1), 2),
            "elapsed_time": time.strftime("%H:%M:%S", time.gmtime(elapsed)),
            "remaining_time": time.strftime("%H:%M:%S", time.gmtime(remaining)),
        }
        record = {k: v for k, v in record.items() if v is not None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class AbortCallback(TrainerCallback):
    """Stop cleanly when `flag` (a threading.Event) is set: finish the current optimizer step, save a
    checkpoint (model, optimizer, scheduler, RNG, global step) and end training. The panel's abort
    button sets the flag; tests set it too (`stop_after` sets it by itself after that many steps)."""

    def __init__(self, flag: threading.Event | None = None, stop_after: int | None = None):
        self.flag = flag if flag is not None else threading.Event()
        self.stop_after = stop_after
        self.aborted = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_after is not None and state.global_step >= self.stop_after:
            self.flag.set()
        if self.flag.is_set():
            self.aborted = True
            control.should_save = True
            control.should_training_stop = True
        return control


class LivePlotCallback(TrainerCallback):
    """Redraw the loss plot under the running cell after every log (only inside a notebook).

    `display_id`-based updating keeps one picture that changes instead of printing a new one."""

    def __init__(self, title: str = "training loss"):
        self.title = title
        self.handle = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        from IPython.display import Image, display

        image = Image(data=figure_png(plot_loss(state.log_history, title=self.title)), format="png")
        if self.handle is None:
            self.handle = display(image, display_id=True)
        else:
            self.handle.update(image)
