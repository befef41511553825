"""``portfolio trainer``."""

from __future__ import annotations

from collections.abc import Sequence

from shared.cli import run_service
from shared.lifecycle import StopFlag
from shared.settings import Settings


def _app(settings: Settings, stop: StopFlag) -> None:
    from services.trainer.app import run  # torch is imported only when the service runs

    run(settings, stop)


def main(argv: Sequence[str] | None = None) -> int:
    return run_service("trainer", "train the LSTM on the stream and publish predictions", argv, _app)
