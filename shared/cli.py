"""The ``portfolio`` command: one subcommand per service and tool.

Each subcommand lives in its service (``module:function`` taking ``argv`` and returning an exit code) and
is imported only when called, so ``portfolio --help`` is fast and a service's heavy imports (torch)
stay out of the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from shared.lifecycle import StopFlag
from shared.logs import setup_logging
from shared.settings import Settings, SettingsError, load_settings

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "producer": ("services.producer.cli:main", "publish new and revised 1-minute bars to Kafka"),
    "sink": ("services.sink.cli:main", "write bars and predictions from Kafka into MongoDB"),
    "trainer": ("services.trainer.cli:main", "train the LSTM on the stream and publish predictions"),
    "evaluate": ("services.scoring.cli:main", "print the walk-forward scores against naive"),
    "report": ("services.report.cli:main", "render actual closes, predictions and errors as HTML"),
    "backtest": ("services.pipeline.backtest_cli:main", "walk-forward backtest of a recorded bars file"),
    "dashboard": ("services.dashboard.cli:main", "serve the live web page and the JSON read API"),
    "run": ("services.pipeline.cli:main", "run producer, sink, trainer and dashboard with a live view"),
}

EXIT_BAD_SETTINGS = 2


def settings_for(command: str) -> Settings | None:
    """The settings for ``portfolio <command>``; on a bad value, say which on stderr and return None
    (the caller exits with :data:`EXIT_BAD_SETTINGS`)."""
    try:
        return load_settings()
    except SettingsError as error:
        print(f"portfolio {command}: {error}", file=sys.stderr)
        return None


def run_service(
    name: str,
    description: str,
    argv: Sequence[str] | None,
    app: Callable[[Settings, StopFlag], None],
) -> int:
    """The start of every service: parse ``--help``, build the settings (a bad one exits 2 naming it),
    set up logging, turn SIGINT/SIGTERM into a stop flag, run ``app`` until it returns."""
    parser = argparse.ArgumentParser(
        prog=f"portfolio {name}",
        description=f"{description}. Configured by PORTFOLIO_* environment variables and .env (see README).",
    )
    parser.parse_args(argv)
    settings = settings_for(name)
    if settings is None:
        return EXIT_BAD_SETTINGS
    setup_logging(settings, name)
    stop = StopFlag().install(exit_after_s=settings.common.stop_timeout_s)
    try:
        app(settings, stop)
    except SettingsError as error:
        logging.getLogger(name).error("%s", error)  # noqa: TRY400 (a bad setting: its message, no traceback)
        return EXIT_BAD_SETTINGS
    return 0


def _load(target: str) -> Callable[[list[str]], int]:
    module, function = target.split(":")
    entry: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    width = max(len(name) for name in SUBCOMMANDS)
    usage = "usage: portfolio <command> [--help]\n\ncommands:\n" + "\n".join(
        f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()
    )
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage)
        return 0 if args else EXIT_BAD_SETTINGS
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"portfolio: unknown command {name!r}\n\n{usage}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return _load(SUBCOMMANDS[name][0])(rest)


if __name__ == "__main__":
    sys.exit(main())
