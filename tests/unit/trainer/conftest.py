"""Trainer unit tests: two torch threads, like the 2-core machine the figures are quoted for."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)
