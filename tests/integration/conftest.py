"""The fault tests' fixture (their set-up and closing checks), and the fault table (fault, what happened,
recovery time, lost, doubled) printed after the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dashboard_support import DashboardCase, dashboard_case
from tests.integration.fault_support import FAULT_ROWS, FaultCase, SettingsFactory


@pytest.fixture
def fault(settings_factory: SettingsFactory, tmp_path: Path) -> Iterator[FaultCase]:
    """A fault test's settings, services and checks. One settings is made on the shared stack first: the
    test databases are dropped afterwards through the first settings made, and a test's own FerretDB is
    gone by then."""
    settings_factory()
    case = FaultCase(settings_factory, tmp_path)
    yield case
    case.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAULT_ROWS:
        return
    terminalreporter.section("fault table")
    terminalreporter.write_line("| fault | what happened | recovery | lost | doubled |")
    terminalreporter.write_line("| --- | --- | --- | --- | --- |")
    for fault, what, recovery, lost, doubled in FAULT_ROWS:
        terminalreporter.write_line(f"| {fault} | {what} | {recovery} | {lost} | {doubled} |")


@pytest.fixture
def dashboard(settings_factory: SettingsFactory, tmp_path: Path) -> Iterator[DashboardCase]:
    """A dashboard on this test's topics and database, started by the test (after it stored what it needs)."""
    yield from dashboard_case(settings_factory, tmp_path)
