"""Datasets the LLaMA-Factory way: the dataset_info.json registry, every format -> canonical rows,
validation that names the bad row, demo data and tools (preview, statistics, conversion, split).

    from kit import data
    ds = data.load_dataset("alpaca_en_demo")                     # canonical rows for SFT
    report = data.check_dataset("dpo_en_demo", stage="dpo")       # valid / invalid rows

Module map: registry (dataset_info.json), readers (files / hubs / scripts), formats (alpaca, sharegpt,
openai -> canonical; the checks), loader (load_dataset, check_dataset), validate (DataError,
DatasetReport), identity ({{name}} / {{author}}), tools (preview, stats, convert, split), demo (how
the demo images were drawn). Widgets live in kit.ui.data.
"""
from kit.data.formats import STAGES, features
from kit.data.identity import fill_placeholders, make_identity_dataset
from kit.data.loader import check_dataset, load_dataset, load_rows
from kit.data.tools import (PreviewPage, TokenStats, convert_dataset, preview, registry_entry, render_row,
                            split_dataset, to_format, token_stats, write_rows)
from kit.data.registry import DATA_CONFIG, DatasetAttr, get_dataset_attr, read_dataset_info, register_dataset
from kit.data.validate import DataError, DatasetReport, RowIssue

__all__ = [
    "STAGES", "features", "fill_placeholders", "make_identity_dataset", "check_dataset", "load_dataset",
    "load_rows", "DATA_CONFIG", "DatasetAttr", "get_dataset_attr", "read_dataset_info", "register_dataset",
    "DataError", "DatasetReport", "RowIssue", "PreviewPage", "TokenStats", "convert_dataset", "preview",
    "registry_entry", "render_row", "split_dataset", "to_format", "token_stats", "write_rows",
]
