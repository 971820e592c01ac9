"""Lesson exercises as nbgrader assignments (kit.assign, docs/assignments.md).

- every notebook is in the format (answer cells with solution regions, graded check cells with points,
  check cells that print only fixed text);
- `python -m kit course --student OUT` writes the student edition with no solution left in it;
- nbgrader's own generate step accepts a lesson;
- each lesson's student edition is executed ONCE (errors allowed), then the instructor's answers and
  checks run in the same kernel: every graded check must fail for students and every instructor cell
  must pass; the same run's outputs are scanned for noise (kernel TCP warnings, hub kernel lookups,
  library warnings, stacked progress bars).
"""
import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kit import assign, course, env

NOTEBOOKS = [p.name for p in assign.notebooks()]
LESSONS = [p.stem for p in course.lessons()]


def _solution_lines(nb) -> list[str]:
    """The non-trivial lines inside every solution region of a notebook."""
    lines = []
    for index in assign.solution_cells(nb):
        inside = False
        for line in nb.cells[index].source.splitlines():
            if assign.BEGIN_SOLUTION in line:
                inside = True
            elif assign.END_SOLUTION in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_in_assignment_format(name):
    nb = nbformat.read(env.notebooks_dir() / name, as_version=4)
    assert assign.problems(nb, name) == []
    if name[:2].isdigit():  # a lesson: easy, medium and hard, each an answer and a graded check
        assert len(assign.solution_cells(nb)) >= 3 and len(assign.graded_cells(nb)) >= 3, name
        assert assign.total_points(nb) > 0


def test_format_check_catches_a_check_that_shows_its_answer():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 2\n### END SOLUTION",
                                          metadata={"nbgrader": assign.solution_metadata("a")}),
                nbformat.v4.new_code_cell("expected = 2\nassert x == expected\nprint('want', expected)",
                                          metadata={"nbgrader": assign.check_metadata("a", 1)}),
                nbformat.v4.new_code_cell("### BEGIN SOLUTION\ny = 1\n### END SOLUTION")]
    found = assign.problems(nb, "t.ipynb")
    assert "t.ipynb cell 1: grade_id 'a' repeats cell 0" in found
    assert "t.ipynb cell 1: check cell line 3 prints a value; print only fixed text" in found
    assert "t.ipynb cell 2: has a solution region but no nbgrader metadata solution: true" in found
    with pytest.raises(ValueError, match="choose another folder"):
        assign.write_student_edition(env.notebooks_dir())


def test_student_edition_cli_leaves_no_solution(tmp_path):
    out = tmp_path / "student"
    run = subprocess.run([sys.executable, "-m", "kit", "course", "--student", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    written = sorted(p.name for p in out.glob("*.ipynb"))
    assert written == NOTEBOOKS and len(written) >= 12
    for name in written:
        instructor = nbformat.read(env.notebooks_dir() / name, as_version=4)
        student = nbformat.read(out / name, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert assign.BEGIN_SOLUTION not in text and assign.BEGIN_HIDDEN not in text
        assert text.count("raise NotImplementedError()") == len(assign.solution_cells(instructor))
        checks = "\n".join(student.cells[i].source for i in assign.graded_cells(student))
        leaked = [line for line in _solution_lines(instructor) if line in checks]
        assert not leaked, f"{name}: answer lines visible in the student's check cells: {leaked[:3]}"
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


def _activated() -> dict:
    """The environment of an activated venv: nbgrader runs `alembic` from PATH, so the interpreter's
    bin folder goes first (CI calls .venv/bin/python without activating)."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def test_nbgrader_generate_assignment_accepts_a_lesson(tmp_path):
    pytest.importorskip("nbgrader", reason="nbgrader comes with the [teach] extra")
    lesson = "00_setup_and_tour.ipynb"
    source = tmp_path / "source" / "lesson00"
    source.mkdir(parents=True)
    (source / lesson).write_bytes((env.notebooks_dir() / lesson).read_bytes())
    run = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lesson00", "--force",
                          f"--CourseDirectory.root={tmp_path}"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=_activated())
    assert run.returncode == 0, run.stdout + run.stderr
    released = nbformat.read(tmp_path / "release" / "lesson00" / lesson, as_version=4)
    ours = assign.student_edition(nbformat.read(env.notebooks_dir() / lesson, as_version=4))
    assert [c.source for c in released.cells] == [c.source for c in ours.cells]
    graded = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(graded) == 3 and all(c.metadata["nbgrader"].get("checksum") for c in graded)


# --- executing the lessons: one kernel per lesson, shared by the tests below --------------------------

NOISE = {
    "kernel TCP warning": re.compile(r"Kernel is running over TCP"),
    "hub kernels lookup": re.compile(r"kernels-community"),
    "a library warning": re.compile(r"\b[A-Z]\w*Warning: "),
    "a full config dump": re.compile(r"^\s*(ppo_buffer_size|galore_rank|badam_mode)\b", re.M),
}
PROGRESS_BAR = re.compile(r"^(?P<desc>[^\r\n|%]*?):?\s*\d+%\|", re.M)


@functools.lru_cache(maxsize=None)
def _executed(lesson: str) -> course.EditionsRun:
    # no quick-mode cell takes minutes; a cell with no reply for 10 minutes lost it (see run_editions)
    return course.run_editions(env.notebooks_dir() / f"{lesson}.ipynb", quick=True, timeout=600)


def noise_in(text: str) -> list[str]:
    """Which noise patterns a run's output shows, with the first matching line of each."""
    found = []
    for what, pattern in NOISE.items():
        match = pattern.search(text)
        if match:
            line = text[text.rfind("\n", 0, match.start()) + 1:text.find("\n", match.end())]
            found.append(f"{what}: {line.strip()[:160]}")
    return found


LOAD_BAR = "Loading weights"  # transformers draws exactly one of these per model load


def progress_bars_per_cell(nb_cells) -> list[tuple[int, int]]:
    """(cell index, number of progress bars other than the one-per-load weight bar) for each cell
    that shows such bars; stderr text bars and notebook (widget) bars both count, a redrawn bar once."""
    counts = []
    for index, cell in enumerate(nb_cells):
        bars = 0
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                found = {m.group("desc").strip() for m in PROGRESS_BAR.finditer(o.get("text", "").replace("\r", "\n"))}
                bars += len({d for d in found if not d.startswith(LOAD_BAR)})
            elif o.get("output_type") == "display_data":
                plain = str(o.get("data", {}).get("text/plain", ""))
                if PROGRESS_BAR.match(plain) and not plain.startswith(LOAD_BAR):
                    bars += 1
        if bars:
            counts.append((index, bars))
    return counts


def test_noise_scan_detects_noise():
    assert noise_in("x\n[IPKernelApp] WARNING | Kernel is running over TCP without encryption\n")
    assert noise_in("/x.py:3: FutureWarning: `torch_dtype` is deprecated\n")
    assert noise_in("Failed to load kernels-community/rmsnorm\n")
    assert not noise_in("correct\nloss 1.23 -> 0.98\n")
    cells = [{"outputs": [{"output_type": "stream", "name": "stderr",
                           "text": "Loading weights:  50%|##   | 1/2\rLoading weights: 100%|####| 2/2\nMap: 100%|###| 9/9\n"},
                          {"output_type": "display_data", "data": {"text/plain": "Generating:   0%|   | 0/4"}},
                          {"output_type": "display_data", "data": {"text/plain": "Loading weights:   0%|  | 0/272"}}]}]
    assert progress_bars_per_cell(cells) == [(0, 2)]  # Map and Generating; the weight bar is one per load


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_student_edition_fails_every_check_instructor_passes(lesson, capfd):
    run = _executed(lesson)
    kernel_stderr = capfd.readouterr().err
    assert run.instructor_errors() == [], f"{lesson}: the instructor's answers or checks fail"
    assert run.graded_that_passed_for_students() == [], (
        f"{lesson}: these checks pass without an answer (they cannot fail, or the answer is visible)")
    assert not noise_in(kernel_stderr), kernel_stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_executed_lesson_is_quiet(lesson):
    run = _executed(lesson)  # the run above, reused
    assert noise_in(run.outputs_text()) == []
    stacked = [(i, n) for i, n in progress_bars_per_cell(run.student.cells) if n > 1]
    assert not stacked, f"{lesson}: cells with more than one progress bar besides model loads (cell, bars): {stacked}"


def test_run_editions_runs_a_lesson_again_when_a_reply_is_lost(tmp_path, monkeypatch):
    """A cell that gets no reply ends the attempt; the lesson runs again in a new kernel (attempts=2),
    and a second loss raises. The loss is simulated: the first execute raises nbclient's timeout."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    lesson = tmp_path / "99_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1\nprint(x)")]), lesson)
    real, calls = NotebookClient.execute, []

    def flaky(self, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise CellTimeoutError("Cell execution timed out")
        return real(self, **kwargs)

    monkeypatch.setattr(NotebookClient, "execute", flaky)
    run = course.run_editions(lesson, quick=True, timeout=60)
    assert run.attempts == 2 and len(calls) == 2
    assert run.student.cells[0].outputs[0]["text"] == "2\n"
    calls.clear()
    monkeypatch.setattr(NotebookClient, "execute", lambda self, **kwargs: (_ for _ in ()).throw(CellTimeoutError("lost")))
    with pytest.raises(CellTimeoutError):
        course.run_editions(lesson, quick=True, timeout=60)
