"""The headless course runner: executed copies, HTML, summary.json, and failures located by cell."""
import json
import subprocess
import sys

import nbformat

from kit import course


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, path)


def test_runner_writes_outputs_and_locates_failure(tmp_path):
    lessons = tmp_path / "nbs"
    lessons.mkdir()
    _notebook(lessons / "00_ok.ipynb", "import os", "print('mode', os.environ['KIT_QUICK'])")
    _notebook(lessons / "01_broken.ipynb", "x = 1", "y = x + 1", "raise ValueError('boom in cell two')", "z = 3")
    _notebook(lessons / "notes.ipynb", "raise SystemExit('not a lesson: must not run')")
    out = tmp_path / "build"
    results = course.run_course(quick=True, out=out, folder=lessons, timeout=120)

    assert [r.lesson for r in results] == ["00_ok", "01_broken"]
    ok, broken = results
    assert ok.ok and ok.failed_cell is None
    assert not broken.ok and broken.failed_cell == 2 and "boom in cell two" in broken.error
    for name in ("00_ok", "01_broken"):
        assert (out / f"{name}.ipynb").exists() and (out / f"{name}.html").stat().st_size > 1000
    executed = nbformat.read(out / "00_ok.ipynb", as_version=4)
    assert "mode 1" in executed.cells[1].outputs[0]["text"]  # quick mode reached the kernel
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "quick"
    assert [(x["lesson"], x["ok"], x["failed_cell"]) for x in summary["lessons"]] == [
        ("00_ok", True, None), ("01_broken", False, 2)]
    text = course.format_summary(results)
    assert "FAILED 01_broken, cell 2: ValueError: boom in cell two" in text


def test_cli_exit_status_and_only(tmp_path, monkeypatch):
    lessons = tmp_path / "nbs"
    lessons.mkdir()
    _notebook(lessons / "00_ok.ipynb", "print(1)")
    _notebook(lessons / "01_bad.ipynb", "1/0")
    code = ("import sys, kit.course as c; r = c.run_course(quick=True, out=sys.argv[1], folder=sys.argv[2], "
            "only=sys.argv[3:]); sys.exit(0 if all(x.ok for x in r) else 1)")
    good = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a"), str(lessons), "00"])
    bad = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b"), str(lessons)])
    assert good.returncode == 0 and bad.returncode == 1
    assert not (tmp_path / "a" / "01_bad.ipynb").exists()


def test_lessons_are_committed_without_outputs():
    for path in course.lessons():
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {index} has outputs"


def test_main_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "kit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "course" in out.stdout and "serve" in out.stdout


def test_runner_kernel_does_not_warn_about_tcp(tmp_path, capfd):
    """Kernels talk over IPC sockets, so ipykernel prints no 'running over TCP without encryption'."""
    lessons = tmp_path / "nbs"
    lessons.mkdir()
    _notebook(lessons / "00_ok.ipynb", "print('hello')")
    results = course.run_course(quick=True, out=tmp_path / "out", folder=lessons, timeout=120)
    captured = capfd.readouterr()
    assert results[0].ok
    assert "without encryption" not in captured.err + captured.out
    assert not any(p.name.startswith("kernel-ipc") for p in tmp_path.iterdir()), "no socket files left behind"
