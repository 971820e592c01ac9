"""The whole course in full mode on a GPU: every lesson (and the studio notebook) with KIT_QUICK=0.

    python bench/course_full_gpu.py --out bench/results                    # all lessons, one process
    python bench/course_full_gpu.py --only 00 01 02 --out R --merge        # some lessons, added to R's file

Runs `kit.course.run_course(quick=False)` (each notebook in a fresh kernel; the lessons pick CUDA
and bf16 themselves) and writes <out>/course_full_gpu.json: {mode, gpu, versions, lessons: [{lesson,
seconds, ok, failed_cell, error}]}. With --merge, lessons run now replace their earlier entries and
the others are kept, so the course can be run in parts (a device call has a time limit), and each
entry names the GPU, versions and commit of its own run. The executed notebooks and their HTML go to
--build (default build/course_full). Not here: timing targets (a lesson's seconds depend on the
GPU and on what the previous lessons left in the work folder).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kit.env import source_commit  # noqa: E402  (re-exported: the results name the commit they ran from)


def machine() -> dict:
    import torch

    from kit.env import package_versions

    found = package_versions(("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "liger-kernel"),
                             missing=None)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no CUDA GPU)"
    about = {"gpu": gpu, "versions": {name: version for name, version in found.items() if version}}
    commit = source_commit()
    if commit:
        about["commit"] = commit
    return about


def merge(earlier: list[dict], new: list[dict]) -> list[dict]:
    """Earlier entries with the lessons run now replaced, in course order (by name)."""
    by_name = {r["lesson"]: r for r in earlier}
    by_name.update({r["lesson"]: r for r in new})
    return sorted(by_name.values(), key=lambda r: (not r["lesson"][:2].isdigit(), r["lesson"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder of course_full_gpu.json")
    parser.add_argument("--build", default="build/course_full", help="executed notebooks and HTML")
    parser.add_argument("--only", nargs="*", default=None, help="lesson name prefixes (00, 01, studio, ...)")
    parser.add_argument("--merge", action="store_true", help="keep the earlier entries of lessons not run now")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--merge-from", metavar="FILE",
                        help="merge FILE's lessons (a course_full_gpu.json written on a GPU machine) into "
                             "<out>/course_full_gpu.json: its entries replace those of the same lessons; no run")
    args = parser.parse_args(argv)
    out = Path(args.out) / "course_full_gpu.json"
    if args.merge_from:
        earlier = json.loads(out.read_text())["lessons"] if out.exists() else []
        lessons = merge(earlier, json.loads(Path(args.merge_from).read_text())["lessons"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"mode": "full", "lessons": lessons}, indent=1, ensure_ascii=False) + "\n")
        print(f"{out}: {sum(r['ok'] for r in lessons)}/{len(lessons)} notebooks ok")
        return 0

    from kit import course

    about = machine()
    if about["gpu"].startswith("cpu"):
        print("note: no CUDA GPU here; the lessons run in full mode on the CPU (slow)", flush=True)
    started = time.time()
    results = course.run_course(quick=False, out=args.build, only=args.only, timeout=args.timeout)
    stamp = {**about, "date": time.strftime("%Y-%m-%d")}
    entries = [{k: v for k, v in asdict(r).items() if k in ("lesson", "seconds", "ok", "failed_cell", "error")} | stamp
               for r in results]
    earlier = json.loads(out.read_text())["lessons"] if args.merge and out.exists() else []
    lessons = merge(earlier, entries)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mode": "full", "lessons": lessons}, indent=1, ensure_ascii=False) + "\n")
    ok = sum(r["ok"] for r in lessons)
    print(f"{out}: {ok}/{len(lessons)} notebooks ok; this run {time.time() - started:.0f} s on {about['gpu']}")
    return 0 if all(r["ok"] for r in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
