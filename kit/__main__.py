"""Command line: `python -m kit <command>` (also installed as `kit`).

    course [--quick] [--out DIR] [--only NN ...]   run the lessons headless (README command 1)
    course --student DIR                            write the student edition of every notebook
    train [--nproc N] CONFIG.yaml [--overwrite] [--resume]   train from a LLaMA-Factory-style YAML
    export ...                                      merge a LoRA adapter and export (see --help)
    serve --model DIR [--port N]                    an OpenAI-style chat API on 127.0.0.1
    env                                             print what this machine has

Every command's flags are dataclass fields parsed by transformers' HfArgumentParser (kit.cli).
"""
from __future__ import annotations

import importlib
import sys

# subcommands implemented in other modules: name -> "module:function(argv) -> int"
DELEGATED = {
    "train": "kit.train.cli:main",
    "export": "kit.export:cli_main",
    "serve": "kit.serve:cli_main",
}


def _course(argv: list[str]) -> int:
    from kit import course
    from kit.cli import dataclass_parser, parse

    parser = dataclass_parser("python -m kit course", "Run every lesson headless.", course.CourseArgs)
    args, _, _ = parse(parser, argv)
    if args.student:
        from kit import assign

        written = assign.write_student_edition(args.student)
        print(f"student edition: {len(written)} notebooks -> {args.student}")
        return 0
    results = course.run_course(quick=True if args.quick else None, out=args.out, only=args.only or None,
                                timeout=args.timeout)
    return 0 if all(r.ok for r in results) else 1


def _env(argv: list[str]) -> int:
    from kit import env

    print(env.report())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"course": _course, "env": _env}
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    name, rest = argv[0], argv[1:]
    if name in commands:
        return commands[name](rest)
    if name in DELEGATED:
        module, func = DELEGATED[name].split(":")
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    print(f"unknown command {name!r}; choose one of: {', '.join([*commands, *DELEGATED])}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
