"""GGUF export per quantization: file size, max |logit difference| against the source folder,
top-1 agreement, the greedy answer, and (where llama-cpp-python is installed) the answer through
llama.cpp itself. Writes bench/results/gguf_export.json.

    python bench/gguf_export.py                       # lesson 06's merged model (trains/merges if needed)
    python bench/gguf_export.py --model_dir DIR --quantizations f16 q8_0 q4_0
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def lesson06_merged(folder: Path) -> Path:
    from kit import export, train

    if not (folder / "config.json").exists():
        adapter = train.ensure_run(train.recipes.identity_sft()).output_dir
        export.merge_and_save(adapter, folder, overwrite=True)
    return folder


def llamacpp_answer(gguf_file: Path, prompt: str, max_tokens: int = 24) -> dict:
    """The greedy answer through llama.cpp (llama-cpp-python), with the file's own chat template."""
    try:
        import llama_cpp
    except ImportError:
        return {"llama_cpp": "not installed (pip install llama-cpp-python)"}
    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=512, verbose=False, seed=0)
    out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0)
    return {"llama_cpp": llama_cpp.__version__, "llama_cpp_answer": out["choices"][0]["message"]["content"].strip()}


def main(argv=None) -> int:
    from kit import env, export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", help="a merged llama-family folder (default: lesson 06's, made if missing)")
    parser.add_argument("--quantizations", nargs="+", default=["f16", "q8_0", "q4_0"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "gguf_export.json"))
    args = parser.parse_args(argv)
    work = env.work_dir() / "bench_gguf"
    model_dir = Path(args.model_dir) if args.model_dir else lesson06_merged(work / "merged")
    rows = []
    for quantization in args.quantizations:
        start = time.time()
        report = export.to_gguf(model_dir, work / f"model-{quantization}.gguf", quantization=quantization,
                                overwrite=True)
        row = {"quantization": quantization, "size_mb": round(report.size_bytes / 1e6, 1),
               "tensor_types": report.tensor_types, "max_abs_logit_diff": report.max_abs_logit_diff,
               "tolerance": report.tolerance, "top1_agreement": report.top1_agreement,
               "answer": report.answer, "reference_answer": report.reference_answer,
               "same_answer": report.same_answer, "seconds": round(time.time() - start, 1)}
        row.update(llamacpp_answer(Path(report.gguf_file), "Who are you?"))
        print(json.dumps(row, ensure_ascii=False), flush=True)
        rows.append(row)
        _write(args.out, model_dir, rows)  # after every row: a stopped run keeps what it measured
    return 0


def _write(out: str, model_dir: Path, rows: list[dict]) -> None:
    import gguf  # noqa: F401
    import torch
    import transformers
    from importlib.metadata import version

    result = {"model_dir": str(model_dir), "machine": platform.platform(), "python": platform.python_version(),
              "cpu_count": __import__("os").cpu_count(),
              "versions": {"gguf": version("gguf"), "torch": torch.__version__, "transformers": transformers.__version__},
              "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
