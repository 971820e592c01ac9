"""`python -m kit train CONFIG.yaml [--overwrite] [--resume] [--set key=value ...] [--preview]`.

Reads a LLaMA-Factory-style training YAML (LLaMA-Factory's own examples work; keys the kit does not
use are listed in a warning), optionally overrides settings with --set, and trains with
kit.train.run. --preview prints the equivalent llamafactory-cli command and exits.
Exit status: 0 finished, 130 stopped early (a checkpoint was saved; rerun with --resume), 2 bad config.
Not here: anything the Python API cannot do.
"""
from __future__ import annotations

import argparse
import sys

import yaml


def main(argv: list[str] | None = None) -> int:
    from kit.train.config import ConfigError, TrainConfig

    parser = argparse.ArgumentParser(prog="python -m kit train", description="Train from a YAML config.")
    parser.add_argument("config", help="a training YAML (LLaMA-Factory's argument names)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output_dir")
    parser.add_argument("--resume", action="store_true", help="continue from output_dir's last checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set max_steps=10 (repeatable)")
    parser.add_argument("--preview", action="store_true", help="print the llamafactory-cli command and exit")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.from_yaml(args.config)
        if args.set:
            values = config.to_dict() | {"extra": config.extra}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep:
                    raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
                values[key.strip()] = yaml.safe_load(value)
            config = TrainConfig.from_dict(values, source=args.config)
        config.validate()
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.preview:
        print(config.command_preview())
        return 0
    from kit.train.runner import run

    try:
        result = run(config, overwrite_output_dir=True if args.overwrite else None, resume=args.resume)
    except FileExistsError as err:  # output_dir busy, or not a folder the kit made (left untouched)
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result)
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
