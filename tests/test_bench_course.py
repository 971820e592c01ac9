"""bench/course_full_gpu.py's bookkeeping: a course run in parts keeps each lesson's own entry, and each
entry names the commit it ran from."""
import importlib.util
import json
import re

from kit import env

spec = importlib.util.spec_from_file_location("course_full_gpu", env.repo_root() / "bench" / "course_full_gpu.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_merge_replaces_the_lessons_run_now_and_keeps_course_order():
    earlier = [dict(lesson="00_setup", ok=True, commit="a"), dict(lesson="11_export", ok=False, commit="a"),
               dict(lesson="studio", ok=True, commit="a")]
    new = [dict(lesson="11_export", ok=True, commit="b"), dict(lesson="02_datasets", ok=True, commit="b")]
    merged = bench.merge(earlier, new)
    assert [r["lesson"] for r in merged] == ["00_setup", "02_datasets", "11_export", "studio"]
    assert [r["commit"] for r in merged] == ["a", "b", "b", "a"]


def test_the_commit_comes_from_kit_commit_else_from_git(monkeypatch):
    monkeypatch.setenv("KIT_COMMIT", "0123abc")
    assert bench.source_commit() == "0123abc"
    monkeypatch.delenv("KIT_COMMIT")
    found = bench.source_commit()
    if (env.repo_root() / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", found)
    else:
        assert found is None


def test_merge_from_a_device_file_without_running(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "course_full_gpu.json").write_text(json.dumps({"mode": "full", "lessons": [
        dict(lesson="08_pref", ok=True), dict(lesson="11_export", ok=True, commit="a")]}))
    device = tmp_path / "device.json"
    device.write_text(json.dumps({"mode": "full", "lessons": [dict(lesson="11_export", ok=False, commit="b")]}))
    assert bench.main(["--merge-from", str(device), "--out", str(out)]) == 0
    lessons = json.loads((out / "course_full_gpu.json").read_text())["lessons"]
    assert lessons == [dict(lesson="08_pref", ok=True), dict(lesson="11_export", ok=False, commit="b")]
