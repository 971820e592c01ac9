"""The headless course runner: `python -m kit course [--quick] [--out DIR] [--student DIR]`.

Runs every lesson notebook in order, each in a fresh kernel, and writes into the output folder
(default build/course): the executed notebook, an HTML copy of it, and summary.json with one entry
per lesson (lesson, seconds, ok, failed cell). A failing lesson does not stop the run; the exit
status says whether all passed. `run_editions` executes a lesson's student edition and then its
instructor answers in the same kernel (tests/test_assignments.py). Kernels talk over IPC sockets
(not TCP) where the platform has them. Not here: the lessons themselves, or any notebook editing
(the student edition is kit.assign's).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kit import env


@dataclass
class LessonResult:
    lesson: str
    seconds: float
    ok: bool
    failed_cell: int | None = None       # index of the failing cell in the notebook (0-based)
    error: str | None = None             # "ErrorName: message" of the failure
    cell_source: str | None = None       # the first lines of the failing cell
    outputs: list = field(default_factory=list)  # paths written (ipynb, html)


def lessons(folder: str | os.PathLike | None = None) -> list[Path]:
    """The lesson notebooks in course order (by their NN_ prefix)."""
    folder = Path(folder) if folder else env.notebooks_dir()
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


@contextmanager
def kernel_config():
    """nbclient settings for a quiet local kernel: IPC transport (a socket file in a private temp
    folder) where the OS has Unix sockets, so ipykernel does not warn about unencrypted TCP."""
    from traitlets.config import Config

    if os.name == "nt":
        yield Config()
        return
    folder = tempfile.mkdtemp(prefix="kit-kernel-")
    try:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def kernel_env(quick: bool) -> dict:
    """The kernel's environment: this one, with the mode switch and offline hub settings kept."""
    environ = dict(os.environ)
    environ["KIT_QUICK"] = "1" if quick else "0"
    return environ


EXTRA_NOTEBOOKS = ("studio.ipynb",)  # run after the lessons (the board of issue 18), not numbered lessons


def notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """What the course run executes: the lessons in order, then the extra notebooks that exist."""
    folder = Path(folder) if folder else env.notebooks_dir()
    return lessons(folder) + [folder / name for name in EXTRA_NOTEBOOKS if (folder / name).is_file()]


def _failed_cell(nb) -> tuple[int | None, str | None, str | None]:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                error = f"{output.get('ename')}: {output.get('evalue')}"
                source = "\n".join(cell.source.splitlines()[:3])
                return index, error, source
    return None, None, None


def run_lesson(path: Path, out_dir: Path, *, quick: bool, timeout: int = 1800,
               kernel_name: str = "python3") -> LessonResult:
    """Execute one notebook in a fresh kernel; write its executed copy and HTML into out_dir."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    error = None
    with kernel_config() as config:
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, config=config,
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute(env=kernel_env(quick))
        except (CellExecutionError, CellTimeoutError) as exc:
            error = exc
        except Exception as exc:  # kernel died, missing kernel spec, ...: still report, keep going
            error = exc
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb_path = out_dir / path.name
    nbformat.write(nb, ipynb_path)
    html_path = out_dir / (path.stem + ".html")
    body, _ = HTMLExporter().from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")
    index, message, source = _failed_cell(nb)
    if error is not None and message is None:
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    return LessonResult(lesson=path.stem, seconds=round(seconds, 1), ok=error is None,
                        failed_cell=index if error is not None else None,
                        error=message if error is not None else None,
                        cell_source=source if error is not None else None,
                        outputs=[str(ipynb_path), str(html_path)])


@dataclass
class EditionsRun:
    """One lesson executed as the student edition, then its instructor exercises in the same kernel."""
    lesson: str
    seconds: float
    student: object                      # the executed student notebook (nbformat node)
    instructor_cells: list               # the instructor's cells from the first answer cell on, executed
                                         # (the tail after the last exercise ran once, after the exercises)
    first_answer: int                    # index of the first answer cell (same in both editions)
    attempts: int = 1                    # kernels it took (a lost reply ends an attempt, see run_editions)

    def errored(self, cell) -> bool:
        return any(o.get("output_type") == "error" for o in cell.get("outputs", []))

    def graded_that_passed_for_students(self) -> list[str]:
        """grade_ids of check cells that did NOT fail in the student edition (each one is a check
        that cannot fail, or an answer left visible)."""
        return [c.metadata["nbgrader"]["grade_id"] for c in self.student.cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade") and not self.errored(c)]

    def instructor_errors(self) -> list[str]:
        return [f"cell {self.first_answer + i}: " + "; ".join(
                    f"{o.get('ename')}: {o.get('evalue')}" for o in c.outputs if o.get("output_type") == "error")
                for i, c in enumerate(self.instructor_cells) if self.errored(c)]

    def outputs_text(self) -> str:
        """All text the run showed (streams, plain-text results), error tracebacks left out."""
        parts = []
        for cell in [*self.student.cells, *self.instructor_cells]:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream":
                    parts.append(o.get("text", ""))
                elif o.get("output_type") in ("execute_result", "display_data"):
                    parts.append(str(o.get("data", {}).get("text/plain", "")))
        return "".join(parts)


def run_editions(path: str | os.PathLike, *, quick: bool = True, timeout: int = 1800,
                 kernel_name: str = "python3", attempts: int = 2) -> EditionsRun:
    """Execute the student edition of one lesson (errors allowed: its answers raise
    NotImplementedError), then, in the same kernel, the instructor's answer and check cells, then the
    cells after the last exercise (clean-up: they run once, after both editions' exercises).
    One execution shows both that every graded check fails for students and passes with the answers.

    A cell that gets no reply within `timeout` seconds ends the attempt, and the whole lesson runs
    again in a new kernel, up to `attempts` times (then the CellTimeoutError is raised). On a loaded
    2-core CI machine nbclient has waited forever on lesson 04's widget cell while the kernel sat idle,
    having finished it (2 runs of 4 on 2026-11-30; the kernel answered a second client at once): the
    reply was lost between kernel and client, not slow. EditionsRun.attempts says how many it took."""
    import sys

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    from kit import assign

    path = Path(path)
    instructor = nbformat.read(path, as_version=4)
    student = assign.student_edition(instructor)
    answers = assign.solution_cells(instructor)
    first = min(answers) if answers else len(instructor.cells)
    graded = [i for i, c in enumerate(instructor.cells) if c.get("metadata", {}).get("nbgrader")]
    last = max(graded) + 1 if graded else len(instructor.cells)  # after the last exercise cell
    # student cells up to the last exercise, the instructor's exercises again, then the lesson's tail
    # (clean-up such as stopping a server or unloading an adapter) once, after both
    start = time.perf_counter()
    for attempt in range(1, attempts + 1):
        combined = copy.deepcopy(student)
        exercises = copy.deepcopy(instructor.cells[first:last])
        combined.cells = [*student.cells[:last], *exercises, *student.cells[last:]]
        try:
            with kernel_config() as config:
                client = NotebookClient(combined, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                                        config=config, resources={"metadata": {"path": str(path.parent)}})
                client.execute(env=kernel_env(quick))
            break
        except CellTimeoutError as error:
            if attempt == attempts:
                raise
            print(f"{path.stem}: a cell got no reply within {timeout} s ({str(error).splitlines()[0]}); "
                  f"running the lesson again in a new kernel (attempt {attempt + 1} of {attempts})",
                  file=sys.stderr, flush=True)
    executed_student = copy.deepcopy(student)
    tail = combined.cells[last + len(exercises):]
    executed_student.cells = [*combined.cells[:last], *tail]
    return EditionsRun(lesson=path.stem, seconds=round(time.perf_counter() - start, 1), student=executed_student,
                       instructor_cells=[*combined.cells[last:last + len(exercises)], *tail], first_answer=first,
                       attempts=attempt)


def run_course(quick: bool | None = None, out: str | os.PathLike = "build/course",
               only: list[str] | None = None, timeout: int = 1800,
               folder: str | os.PathLike | None = None) -> list[LessonResult]:
    """Run the lessons in order (all, or those whose name starts with one of `only`).

    `folder` holds the notebooks (default: the repository's notebooks/)."""
    quick = env.is_quick() if quick is None else quick
    out_dir = Path(out)
    if not out_dir.is_absolute():
        out_dir = env.repo_root() / out_dir
    selected = [p for p in notebooks(folder) if not only or any(p.name.startswith(o) for o in only)]
    if not selected:
        raise FileNotFoundError(f"no lesson notebooks matched {only or 'NN_*.ipynb'} in {folder or env.notebooks_dir()}")
    results: list[LessonResult] = []
    print(f"Running {len(selected)} lessons in {'quick' if quick else 'full'} mode -> {out_dir}", flush=True)
    for path in selected:
        result = run_lesson(path, out_dir, quick=quick, timeout=timeout)
        results.append(result)
        print(f"  {path.stem:<36} {'ok' if result.ok else 'FAILED'} ({result.seconds:.0f} s)", flush=True)
        summary = {"mode": "quick" if quick else "full", "lessons": [asdict(r) for r in results]}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(format_summary(results))
    return results


def format_summary(results: list[LessonResult]) -> str:
    lines = ["", f"{'lesson':<36}{'seconds':>9}  result"]
    for r in results:
        lines.append(f"{r.lesson:<36}{r.seconds:>9.1f}  {'ok' if r.ok else 'FAILED'}")
    failed = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    lines.append(f"{len(results)} lessons run in {total:.0f} s: {len(results) - len(failed)} ok, {len(failed)} failed")
    for r in failed:
        where = f"cell {r.failed_cell}" if r.failed_cell is not None else "before any cell"
        lines.append(f"  FAILED {r.lesson}, {where}: {r.error}")
        if r.cell_source:
            lines += ["      | " + line for line in r.cell_source.splitlines()]
    return "\n".join(lines)


@dataclass
class CourseArgs:
    """Flags of `python -m kit course` (one field = one flag; parsed by HfArgumentParser in kit.cli)."""

    quick: bool = field(default=False, metadata={"help": "quick mode (KIT_QUICK=1): few steps, short sequences"})
    out: str = field(default="build/course", metadata={"help": "output folder (default build/course)"})
    only: list[str] = field(default_factory=list, metadata={"help": "run only lessons whose file name starts with these (e.g. 00 06)"})
    timeout: int = field(default=1800, metadata={"help": "seconds allowed per cell"})
    student: str | None = field(default=None, metadata={"help": "write the student edition of every notebook (solutions and hidden tests removed) into DIR, run nothing", "metavar": "DIR"})
