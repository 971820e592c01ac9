"""Validation results: `DataError` (raised) and `DatasetReport` (kept), both naming file, row and field.

A row that cannot be used is never dropped silently. In non-strict mode `load_dataset` leaves it out of
the returned dataset *and* records it here as a `RowIssue` (dataset, file, row index, field, reason,
how to fix it); in strict mode the first such row raises `DataError` with the same details.
Not here: the checks themselves (kit.data.formats) and reading files (kit.data.readers).
"""
from __future__ import annotations

from dataclasses import dataclass, field


class DataError(ValueError):
    """A dataset problem with its location. `str(err)` reads as one self-contained explanation.

    Attributes (None where they do not apply): `dataset` (registry name), `file` (path), `row`
    (0-based row index in that file), `field` (dataset_info.json key or column), `fix` (a hint).
    """

    def __init__(self, message: str, *, dataset: str | None = None, file: str | None = None,
                 row: int | None = None, field: str | None = None, fix: str | None = None):
        self.dataset, self.file, self.row, self.field, self.fix = dataset, file, row, field, fix
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.dataset:
            where.append(f"dataset '{self.dataset}'")
        if self.file:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = (", ".join(where) + ": " if where else "") + self.reason
        if self.fix:
            text += f"\n  How to fix: {self.fix}"
        return text


@dataclass
class RowIssue:
    """One invalid row: where it is, what is wrong and how to fix it. `row` is 0-based."""

    dataset: str
    file: str
    row: int
    field: str
    reason: str
    fix: str = ""

    def to_error(self) -> DataError:
        return DataError(self.reason, dataset=self.dataset, file=self.file, row=self.row,
                         field=self.field, fix=self.fix or None)

    def __str__(self) -> str:
        return str(self.to_error())


@dataclass
class DatasetReport:
    """What loading found: how many rows were valid, and every invalid row with its reason."""

    datasets: list[str]
    stage: str
    num_valid: int = 0
    issues: list[RowIssue] = field(default_factory=list)
    per_dataset: dict = field(default_factory=dict)  # name -> {"valid": n, "invalid": m, "files": [...]}

    @property
    def num_invalid(self) -> int:
        return len(self.issues)

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        """One line: `alpaca_en_demo (sft): 200 valid, 0 invalid rows`."""
        names = ",".join(self.datasets)
        line = f"{names} ({self.stage}): {self.num_valid} valid, {self.num_invalid} invalid rows"
        if self.issues:
            first = self.issues[0]
            line += f"; first: row {first.row} of {first.file}, field '{first.field}': {first.reason}"
        return line

    def table(self) -> list[dict]:
        """The invalid rows as plain dicts (one per row), e.g. for a DataFrame or a widget."""
        return [dict(dataset=i.dataset, file=i.file, row=i.row, field=i.field, reason=i.reason, fix=i.fix)
                for i in self.issues]

    def rows(self, dataset: str | None = None) -> list[int]:
        """Row indices of the invalid rows (optionally of one dataset)."""
        return [i.row for i in self.issues if dataset is None or i.dataset == dataset]

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  - {issue}" for issue in self.issues[:20]]
        if len(self.issues) > 20:
            lines.append(f"  ... and {len(self.issues) - 20} more (see report.table())")
        return "\n".join(lines)
