"""Shared fixtures. Quick mode is set by the root conftest.py."""
import pytest


@pytest.fixture(scope="session")
def builtin():
    """(model, tokenizer) of the built-in model on CPU in fp32, loaded once per test session.
    Tests must not modify it in place (wrap it with peft or deepcopy first)."""
    from kit import models

    return models.load(models.BUILTIN, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tokenizer():
    from kit import models

    return models.load_tokenizer(models.BUILTIN)
