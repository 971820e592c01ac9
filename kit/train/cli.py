"""`python -m kit train CONFIG.yaml [--overwrite] [--resume] [--set key=value ...] [--key value ...] [--preview]`.

Reads a LLaMA-Factory-style training YAML (LLaMA-Factory's own examples work; keys the kit does not
use are listed in a warning), optionally overrides settings with --set key=value or --key value, and
trains with kit.train.run. The flags are the fields of TrainCommand, parsed by HfArgumentParser
(kit.cli). --preview prints the equivalent llamafactory-cli command and exits.
Exit status: 0 finished, 130 stopped early (a checkpoint was saved; rerun with --resume), 2 bad config.
Not here: anything the Python API cannot do.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass
class TrainCommand:
    """Flags of `python -m kit train` besides the YAML's settings (one field = one flag)."""

    overwrite: bool = field(default=False, metadata={"help": "replace an existing output_dir"})
    resume: bool = field(default=False, metadata={"help": "continue from output_dir's last checkpoint"})
    set: list[str] = field(default_factory=list, metadata={
        "help": "override a setting, e.g. --set max_steps=10 (repeatable)", "action": "append", "metavar": "KEY=VALUE"})
    preview: bool = field(default=False, metadata={"help": "print the llamafactory-cli command and exit"})


def parser():
    from kit.cli import dataclass_parser

    return dataclass_parser("python -m kit train", "Train from a YAML config; any TrainConfig key can also be "
                            "given as --key value (it overrides the YAML).", TrainCommand,
                            positional=("config", "a training YAML (LLaMA-Factory's argument names)"))


def read_config(config_path: str | None, overrides: dict):
    """The TrainConfig of a YAML file (or none) plus overrides, through TrainConfig.from_dict."""
    from kit.train.config import ConfigError, TrainConfig

    if config_path is None and not overrides:
        raise ConfigError("give a training YAML (python -m kit train CONFIG.yaml) or settings as --key value")
    config = TrainConfig.from_yaml(config_path) if config_path else None
    if overrides:
        values = (config.to_dict() | {"extra": config.extra}) if config else {}
        config = TrainConfig.from_dict(values | overrides, source=config_path or "command line")
    return config


def main(argv: list[str] | None = None) -> int:
    from kit.cli import key_values, parse
    from kit.train.config import ConfigError

    args, rest, _, remaining = parse(parser(), argv, remaining=True)
    try:
        overrides = key_values(remaining) | key_values([item for group in args.set for item in
                                                        (group if isinstance(group, list) else [group])], flag="")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        config = read_config(rest.config, overrides)
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
