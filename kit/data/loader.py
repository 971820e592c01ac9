"""`load_dataset`: registry names -> one canonical `datasets.Dataset` (and a report of every bad row).

    ds = kit.data.load_dataset("alpaca_en_demo")                       # sft rows
    ds, report = kit.data.load_dataset("identity,alpaca_en_demo", return_report=True)
    report = kit.data.check_dataset("my_data", stage="sft")            # just the report

Like LLaMA-Factory's loader (src/llamafactory/data/loader.py): several names (a list or a
comma-separated string) are loaded one by one and then concatenated (or interleaved), an entry's
`num_samples` samples rows at random (with repetition when it asks for more than there are), and
`max_samples` keeps the first rows of each dataset. Unlike it, bad rows are reported, not only logged.
Not here: tokenization (kit.templates) and the train / validation split (kit.data.tools.split_dataset).
"""
from __future__ import annotations

import random
from pathlib import Path

from kit.data import formats, readers
from kit.data.registry import get_dataset_attr
from kit.data.validate import DataError, DatasetReport


def _names(name_or_names) -> list[str]:
    if isinstance(name_or_names, str):
        names = [n.strip() for n in name_or_names.split(",")]
    else:
        names = [str(n).strip() for n in name_or_names]
    names = [n for n in names if n]
    if not names:
        raise DataError("no dataset name given", field="dataset", fix="e.g. load_dataset('alpaca_en_demo')")
    return names


def _sample(rows: list, num_samples: int, seed: int) -> list:
    """LLaMA-Factory's num_samples: a random subset, or every row plus random repeats when it asks for more."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    picked = order[:num_samples]
    if num_samples > len(rows):
        picked += [rng.randrange(len(rows)) for _ in range(num_samples - len(rows))]
    return [rows[i] for i in picked]


def load_rows(name: str, *, dataset_dir, stage: str = "sft", strict: bool = False, allow_script: bool = False,
              report: DatasetReport | None = None, split: str = "train") -> list[dict]:
    """The canonical rows (plain dicts) of one registered dataset; invalid rows go into `report`."""
    dataset_dir = Path(dataset_dir)
    attr = get_dataset_attr(name, dataset_dir)
    formats.check_stage(attr, stage)
    report = report if report is not None else DatasetReport([name], stage)
    counts = report.per_dataset.setdefault(name, {"valid": 0, "invalid": 0, "files": []})
    rows = []
    for raw in readers.read_source(attr, dataset_dir, allow_script=allow_script, split=split):
        counts["files"].append(raw.path)
        if attr.load_from == "file":
            formats.check_columns(attr, stage, raw.path, raw.rows)
        problems = list(raw.issues)
        for index, record in raw.rows:
            row, problem = formats.convert_row(attr, record, stage, dataset_dir, Path(raw.path).parent)
            if row is None:
                problems.append(formats.row_issue(attr, raw.path, index, problem))
            else:
                rows.append(row)
        problems.sort(key=lambda issue: issue.row)
        if strict and problems:
            raise problems[0].to_error()
        report.issues.extend(problems)
        counts["invalid"] += len(problems)
    if attr.num_samples:
        rows = _sample(rows, int(attr.num_samples), seed=42) if rows else rows
    counts["valid"] += len(rows)
    return rows


def load_dataset(name_or_names, dataset_dir=None, stage: str = "sft", split: str = "train", strict: bool = False,
                 num_samples: int | None = None, allow_script: bool = False, *, max_samples: int | None = None,
                 mix_strategy: str = "concat", interleave_probs=None, seed: int = 42,
                 return_report: bool = False, verbose: bool = True):
    """Load registered datasets as one canonical `datasets.Dataset` for `stage`.

    name_or_names  a registry name, a comma-separated string or a list (mixed in the given order)
    dataset_dir    the folder with dataset_info.json (default kit.env.data_dir())
    stage          LLaMA-Factory's stage: pt, sft, rm, dpo, kto, ppo (decides the row shape; grpo = ppo)
    split          the split read from hub datasets whose entry names none (local files are one split)
    strict         raise DataError on the first invalid row instead of reporting it
    num_samples    sample this many rows per dataset (overrides the entry's num_samples)
    allow_script   permit entries with script_url (they run Python code)
    max_samples    keep only the first rows of each dataset (LLaMA-Factory's max_samples)
    mix_strategy   concat, interleave_under or interleave_over (LLaMA-Factory's names)
    return_report  also return the DatasetReport: (dataset, report)
    Raises DataError for unusable datasets, in strict mode, and when no valid row is left.
    """
    import datasets

    from kit import env

    dataset_dir = Path(dataset_dir) if dataset_dir is not None else env.data_dir()
    names = _names(name_or_names)
    if num_samples is not None and (isinstance(num_samples, bool) or int(num_samples) != num_samples
                                    or num_samples < 1):
        raise DataError(f"num_samples = {num_samples!r} is not allowed: expected a whole number >= 1",
                        field="num_samples", fix="pass None to use every row")
    report = DatasetReport(names, stage)
    parts = []
    for name in names:
        rows = load_rows(name, dataset_dir=dataset_dir, stage=stage, strict=strict,
                         allow_script=allow_script, report=report, split=split)
        if num_samples is not None and rows:
            rows = _sample(rows, int(num_samples), seed)
        if max_samples is not None:
            rows = rows[:max_samples]
        if rows:
            parts.append(datasets.Dataset.from_list(rows, features=formats.features()))
    report.num_valid = sum(len(p) for p in parts)
    if not parts:
        first = report.issues[0] if report.issues else None
        raise DataError(f"Cannot find valid samples: all {report.num_invalid} rows of {', '.join(names)} are "
                        f"invalid for stage '{stage}'" + (f"; the first: {first.reason}" if first else ""),
                        dataset=first.dataset if first else names[0], file=first.file if first else None,
                        row=first.row if first else None, field=first.field if first else None,
                        fix=(first.fix or None) if first else "the dataset is empty")
    if verbose and (report.issues or len(names) > 1):
        print(f"[kit.data] {report.summary()}")
    if len(parts) == 1 or mix_strategy == "concat":
        dataset = datasets.concatenate_datasets(parts)
    elif mix_strategy in ("interleave_under", "interleave_over"):
        stopping = "first_exhausted" if mix_strategy == "interleave_under" else "all_exhausted"
        dataset = datasets.interleave_datasets(parts, probabilities=interleave_probs, seed=seed,
                                               stopping_strategy=stopping)
    else:
        raise DataError(f"unknown mix_strategy {mix_strategy!r}", field="mix_strategy",
                        fix="use concat, interleave_under or interleave_over")
    return (dataset, report) if return_report else dataset


def check_dataset(name_or_names, dataset_dir=None, stage: str = "sft", allow_script: bool = False) -> DatasetReport:
    """Validate without building a Dataset: the report of valid / invalid rows (never raises for rows)."""
    from kit import env

    dataset_dir = Path(dataset_dir) if dataset_dir is not None else env.data_dir()
    names = _names(name_or_names)
    report = DatasetReport(names, stage)
    for name in names:
        load_rows(name, dataset_dir=dataset_dir, stage=stage, allow_script=allow_script, report=report)
    report.num_valid = sum(v["valid"] for v in report.per_dataset.values())
    return report
