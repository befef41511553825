"""The fault suite's table (fault, what happened, recovery time, lost, doubled), printed after the run."""

from __future__ import annotations

import pytest

from tests.integration.fault_support import FAULT_ROWS, fault_settings  # noqa: F401  (a fixture)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAULT_ROWS:
        return
    terminalreporter.section("fault table")
    terminalreporter.write_line("| fault | what happened | recovery | lost | doubled |")
    terminalreporter.write_line("| --- | --- | --- | --- | --- |")
    for fault, what, recovery, lost, doubled in FAULT_ROWS:
        terminalreporter.write_line(f"| {fault} | {what} | {recovery} | {lost} | {doubled} |")
