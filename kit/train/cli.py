"""`python -m kit train [--nproc N] CONFIG.yaml [--overwrite] [--resume] [--set key=value ...] [--key value ...] [--preview]`.

Reads a LLaMA-Factory-style training YAML (LLaMA-Factory's own examples work; keys the kit does not
use are listed in a warning), optionally overrides settings with --set key=value or --key value, and
trains with kit.train.run. The flags are the fields of TrainCommand, parsed by HfArgumentParser
(kit.cli). --preview prints the equivalent llamafactory-cli command and exits. --nproc N runs it on N
processes through torchrun (kit.train.distributed); `torchrun -m kit train CONFIG.yaml` and
`accelerate launch -m kit train CONFIG.yaml` work too.
Exit status: 0 finished, 130 stopped early (a checkpoint was saved; rerun with --resume), 2 bad config.
Not here: anything the Python API cannot do.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from kit.train import distributed

NPROC_HELP = ("train on N processes (GPUs, or CPU processes over gloo) through torchrun; the config's "
              "deepspeed/fsdp fields pick ZeRO or FSDP, else DDP")


@dataclass
class TrainCommand:
    """Flags of `python -m kit train` besides the YAML's settings (one field = one flag)."""

    overwrite: bool = field(default=False, metadata={"help": "replace an existing output_dir"})
    resume: bool = field(default=False, metadata={"help": "continue from output_dir's last checkpoint"})
    set: list[str] = field(default_factory=list, metadata={
        "help": "override a setting, e.g. --set max_steps=10 (repeatable)", "action": "append", "metavar": "KEY=VALUE"})
    preview: bool = field(default=False, metadata={"help": "print the llamafactory-cli command and exit"})
    nproc: int = field(default=1, metadata={"help": NPROC_HELP})


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

    if distributed.is_distributed():
        distributed.quiet_other_ranks()
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
    if args.nproc != 1 and not distributed.is_distributed():  # launch N copies of this command
        try:
            if rest.config is None:
                raise ConfigError("--nproc needs a training YAML (python -m kit train --nproc N CONFIG.yaml)")
            return distributed.launch(rest.config, args.nproc, distributed_args(argv, rest.config), config=config)
        except (distributed.LaunchError, ConfigError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    from kit.train.runner import run

    try:
        result = run(config, overwrite_output_dir=True if args.overwrite else None, resume=args.resume)
    except (FileExistsError, distributed.LaunchError) as err:  # output_dir busy / not the kit's; bad launch
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.cleanup()
    if distributed.is_main_process():
        print(result)
    return 130 if result.interrupted else 0


def distributed_args(argv: list[str] | None, config_path: str) -> list[str]:
    """This command's arguments without the config path and --nproc (what each process gets)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        argv = argv[1:]
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--nproc":
            skip = True
            continue
        if item.startswith("--nproc="):
            continue
        out.append(item)
    if config_path in out:
        out.remove(config_path)  # launch() passes it first
    return out


if __name__ == "__main__":
    sys.exit(main())
