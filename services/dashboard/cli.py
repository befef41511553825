"""``portfolio dashboard``: the web page and read API of prices, forecast ranges and the pipeline's health."""

from __future__ import annotations

from collections.abc import Sequence

from services.dashboard.app import run
from shared.cli import run_service


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(
        "dashboard", "serve the live page and the read API (bars, forecasts, health, scores)", argv, run
    )
