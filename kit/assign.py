"""Lesson exercises as nbgrader assignments: the format, its checks, and the student edition.

The repository's notebooks are the instructor edition. An exercise is two cells (see
docs/assignments.md):
  - an answer cell: nbgrader metadata `solution: true`, its answer between `### BEGIN SOLUTION`
    and `### END SOLUTION`;
  - a check cell: an autograded test cell (`grade: true`, `points`), asserting without printing
    the expected value; parts that would give the answer away sit between
    `### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS`.
`student_edition` runs nbgrader's own preprocessors (ClearSolutions, ClearHiddenTests, ClearOutput,
LockCells) so the result is what `nbgrader generate_assignment` would release.
Not here: grading submissions, the gradebook, or executing notebooks (tests/test_assignments.py).
"""
from __future__ import annotations

import ast
import copy
import os
from pathlib import Path

import nbformat

from kit import env

SCHEMA_VERSION = 3
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
POINTS = {"easy": 1, "medium": 2, "hard": 3}


def solution_metadata(grade_id: str) -> dict:
    """nbgrader metadata of an answer cell (a solution region, not graded itself)."""
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": SCHEMA_VERSION,
            "solution": True, "task": False}


def check_metadata(grade_id: str, points: int) -> dict:
    """nbgrader metadata of a check cell (an autograded test cell worth `points`)."""
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": SCHEMA_VERSION, "solution": False, "task": False}


def notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """Every notebook of the course folder (lessons NN_*.ipynb and any other, e.g. studio.ipynb)."""
    folder = Path(folder) if folder else env.notebooks_dir()
    return sorted(folder.glob("*.ipynb"))


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if _meta(c).get("solution")]


def graded_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if _meta(c).get("grade")]


def total_points(nb) -> float:
    return sum(_meta(nb.cells[i]).get("points", 0) for i in graded_cells(nb))


def _check_cell_shows(source: str) -> str | None:
    """Why a check cell could show a value (a print of anything but literal text, or a bare last
    expression that Jupyter displays); None when it shows only fixed text."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return f"does not parse: {err}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("print", "display"):
            if not all(isinstance(a, ast.Constant) for a in node.args):
                return f"line {node.lineno} prints a value; print only fixed text"
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not isinstance(tree.body[-1].value, ast.Call):
        return "its last line is an expression Jupyter would display"
    return None


def problems(nb, name: str = "notebook") -> list[str]:
    """What breaks the assignment format in a notebook (empty list: none). Each message names the
    notebook and cell."""
    found, ids = [], {}
    for index, cell in enumerate(nb.cells):
        meta, where = _meta(cell), f"{name} cell {index}"
        src = cell.source
        if (BEGIN_SOLUTION in src or END_SOLUTION in src) and not meta.get("solution"):
            found.append(f"{where}: has a solution region but no nbgrader metadata solution: true")
        elif BEGIN_HIDDEN in src and not meta.get("grade"):
            found.append(f"{where}: has hidden tests but is not a graded cell")
        if not meta:
            continue
        if meta.get("schema_version") != SCHEMA_VERSION:
            found.append(f"{where}: nbgrader schema_version must be {SCHEMA_VERSION}")
        grade_id = meta.get("grade_id")
        if not grade_id:
            found.append(f"{where}: nbgrader cell without grade_id")
        elif grade_id in ids:
            found.append(f"{where}: grade_id {grade_id!r} repeats cell {ids[grade_id]}")
        else:
            ids[grade_id] = index
        if meta.get("solution") and cell.cell_type == "code":
            if not src.count(BEGIN_SOLUTION) or src.count(BEGIN_SOLUTION) != src.count(END_SOLUTION):
                found.append(f"{where}: an answer cell needs {BEGIN_SOLUTION} ... {END_SOLUTION} regions")
        if meta.get("grade"):
            if meta.get("solution"):
                found.append(f"{where}: a check cell must not also be an answer cell")
            if not meta.get("points"):
                found.append(f"{where}: a check cell needs points > 0")
            shows = _check_cell_shows(src)
            if shows:
                found.append(f"{where}: check cell {shows}")
    return found


def student_edition(nb):
    """A copy of an instructor notebook as students get it: solutions replaced by the code stub,
    hidden tests removed, outputs cleared, check cells locked (nbgrader's own preprocessors)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions, LockCells

    student = copy.deepcopy(nb)
    resources: dict = {}
    for pre in (ClearSolutions(code_stub={"python": CODE_STUB}), ClearHiddenTests(), ClearOutput(), LockCells()):
        student, resources = pre.preprocess(student, resources)
    return student


def write_student_edition(out: str | os.PathLike, folder: str | os.PathLike | None = None) -> list[Path]:
    """Write the student edition of every notebook in `folder` (default notebooks/) into `out`.

    Refuses to write into the instructor folder itself. Returns the written paths."""
    source = Path(folder) if folder else env.notebooks_dir()
    out_dir = Path(out)
    if out_dir.resolve() == source.resolve():
        raise ValueError(f"--student {out}: that is the instructor notebooks folder; choose another folder")
    paths = notebooks(source)
    if not paths:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        bad = problems(nb, path.name)
        if bad:
            raise ValueError("not in the assignment format:\n  " + "\n  ".join(bad))
        target = out_dir / path.name
        nbformat.write(student_edition(nb), target)
        written.append(target)
    return written
