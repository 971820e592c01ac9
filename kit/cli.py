"""Command lines from dataclasses: every `python -m kit` command parses its flags with
transformers' `HfArgumentParser`, so a flag is one dataclass field (default + metadata["help"]).

    parser = dataclass_parser("python -m kit serve", "An OpenAI-style chat API.", ServeArgs)
    (args,) = parse(parser, argv)
    args, options, yaml_values = parse(parser, argv, yaml_path="merge.yaml")   # YAML first, flags override

Booleans follow HfArgumentParser: `--flag` sets True and a field defaulting to True also gets
`--no_flag`. A YAML file's keys become the parser's defaults, so a flag always wins over the file;
keys no dataclass knows are returned to the caller (which decides whether they are an error).
Not here: what the commands do (kit.train.cli, kit.export, kit.serve, kit.course).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def dataclass_parser(prog: str, description: str, *dataclass_types, types: dict[str, Callable] | None = None,
                     positional: tuple[str, str] | None = None):
    """An HfArgumentParser over `dataclass_types`. `types` replaces the converter of some flags (for
    fields whose annotation argparse cannot use, such as `float | str`); `positional` = (name, help)
    adds one optional positional argument (the YAML file of `python -m kit train CONFIG.yaml`)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(dataclass_types), prog=prog, description=description)
    for action in parser._actions:
        if types and action.dest in types:
            action.type = types[action.dest]
    if positional:
        parser.add_argument(positional[0], nargs="?", default=None, help=positional[1])
    return parser


def read_yaml(path) -> dict:
    """A YAML mapping (an empty file is {}); anything else is a ValueError naming the file."""
    import yaml

    path = Path(path)
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of key: value, got {type(values).__name__}")
    return values


def parse(parser, argv: list[str] | None, yaml_values: dict | None = None, remaining: bool = False) -> tuple:
    """Parse `argv` into the parser's dataclasses (in order), after making `yaml_values` the defaults.

    Returns (*dataclasses, namespace of other arguments, yaml keys no flag knows[, remaining strings])."""
    dests = {action.dest for action in parser._actions}
    yaml_values = dict(yaml_values or {})
    parser.set_defaults(**{k: v for k, v in yaml_values.items() if k in dests})
    outputs = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True,
                                                 look_for_args_file=False)
    *dataclasses, rest = outputs
    count = len(parser.dataclass_types)
    extra_ns = dataclasses[count] if len(dataclasses) > count else None
    unused = {k: v for k, v in yaml_values.items() if k not in dests}
    if rest and not remaining:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    out: tuple[Any, ...] = (*dataclasses[:count], extra_ns, unused)
    return (*out, rest) if remaining else out


def key_values(strings: list[str], flag: str = "--") -> dict:
    """`--key value`, `--key=value` (or `key=value` with flag="") strings as {key: YAML-parsed value}."""
    import yaml

    values, i = {}, 0
    while i < len(strings):
        item = strings[i]
        if not item.startswith(flag) or (not flag and "=" not in item):
            raise ValueError(f"{item!r}: expected {flag}KEY=VALUE or {flag}KEY VALUE")
        key, sep, value = item[len(flag):].partition("=")
        if not sep:
            if i + 1 >= len(strings) or (flag and strings[i + 1].startswith(flag)):
                raise ValueError(f"{item!r}: no value given")
            value, i = strings[i + 1], i + 1
        values[key.strip()] = yaml.safe_load(value)
        i += 1
    return values
