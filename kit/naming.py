"""Placeholder: kit.naming.describe_name is written in issue 2 (model names)."""
from dataclasses import dataclass


@dataclass
class ModelName:
    raw: str


def describe_name(name: str) -> ModelName:
    return ModelName(raw=name)
