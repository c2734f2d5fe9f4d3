"""Kernel test fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh seeded generator per test (inputs are random, never zeros)."""
    return torch.Generator().manual_seed(1234)
