"""The lesson sequence as a whole: every lesson of the course map exists and follows the conventions
(install cell first, the mode banner, objectives, checked exercises, outputs stripped).
Executing the notebooks is nbmake's job (scripts/test.sh passes --nbmake)."""
import json
import os
import subprocess
import sys

import nbformat
import pytest

from kit import course, env

COURSE_MAP = [
    "00_setup_and_tour", "01_models", "02_datasets", "03_chat_templates",
    "04_precision_quantization_vram", "05_finetuning_methods", "06_sft_lora_identity", "07_qlora",
    "08_preference_training", "09_continued_pretraining", "10_evaluate_and_chat", "11_export_and_deploy",
    "12_acceleration",
    "13_scale_out",
]
INSTALL_CELL = (env.repo_root() / "docs" / "install_cell.txt").read_text().strip()


def _has_assert(source: str) -> bool:
    """True when the cell's code holds an assert statement (not merely the word "assert" or "check")."""
    import ast

    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(code)))
    except SyntaxError:
        return False


def test_exercise_check_rule_needs_a_real_assert():
    assert _has_assert("x = 1\nassert x == 1, 'try again'")
    assert _has_assert("%time y = 2\nif True:\n    assert y")
    assert not _has_assert("# check your answer\nprint('assert it yourself')")
    assert not _has_assert("check = 3")


def test_course_map_is_complete_and_ordered():
    assert [p.stem for p in course.lessons()] == COURSE_MAP


@pytest.mark.parametrize("name", COURSE_MAP)
def test_lesson_conventions(name):
    path = env.notebooks_dir() / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    assert code[0].source.strip() == INSTALL_CELL, "cell 1 must be the shared install cell"
    assert "mode_banner()" in code[1].source, "cell 2 must print the mode"
    assert any(w in markdown for w in ("objective", "you will", "you'll", "by the end")), "the lesson must open with its objectives"
    assert "exercise" in markdown, "the lesson must end with exercises"
    exercise_start = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "exercise" in c.source.lower())
    checks = [c.source for c in nb.cells[exercise_start:] if c.cell_type == "code"]
    assert any(_has_assert(s) for s in checks), "exercises must be checked by a cell with an assert statement"
    assert not any("sys.path" in c.source for c in code[1:]), "no sys.path hacks outside the install cell"
    for index, cell in enumerate(code):
        assert not cell.outputs and cell.execution_count is None, f"cell {index} has outputs"


def test_install_cell_without_kit_stops_with_clear_message(tmp_path):
    """A fresh process where `kit` cannot be imported (no site-packages, no PYTHONPATH), outside any
    checkout and without KIT_REPO_URL: the install cell stops and says exactly what to do."""
    environ = {k: v for k, v in os.environ.items() if k not in ("KIT_REPO_URL", "PYTHONPATH")}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", INSTALL_CELL], cwd=tmp_path, env=environ,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "The kit is not installed" in run.stderr and "KIT_REPO_URL" in run.stderr
    assert "notebooks/ folder of a checkout" in run.stderr and "Run on Colab" in run.stderr
    assert "Traceback" not in run.stderr and not list(tmp_path.iterdir()), "nothing cloned or written"
    assert "## Run on Colab" in (env.repo_root() / "README.md").read_text()
    assert "github.com/llm-course-kit" not in INSTALL_CELL, "no placeholder repository URL"


def test_studio_follows_the_lesson_conventions():
    """notebooks/studio.ipynb (issue 18) is not a numbered lesson but keeps the same conventions."""
    test_lesson_conventions("studio")


def test_every_cell_has_a_unique_id():
    """nbformat 4.5 wants an id on every cell (it warns at every run otherwise, and will refuse)."""
    paths = sorted((env.repo_root() / "notebooks").glob("*.ipynb"))
    assert len(paths) >= len(COURSE_MAP)
    for path in paths:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]  # as stored (nbformat.read fills ids in)
        ids = [cell.get("id") for cell in cells]
        assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: cells without an id or with the same id"
