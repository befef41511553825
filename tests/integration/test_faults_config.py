"""Configuration faults stop a service at once with exit code 2 and a message naming the setting."""

from __future__ import annotations

import time

import pytest

from tests.integration.fault_support import FaultCase

pytestmark = pytest.mark.integration


def test_a_refused_database_login_exits_2_naming_authentication(fault: FaultCase) -> None:
    settings = fault.settings()
    log_file = fault.log("sink")
    started = time.monotonic()
    with fault.service(
        "sink",
        settings,
        PORTFOLIO_MONGODB_USERNAME="sink",
        PORTFOLIO_MONGODB_PASSWORD="wrong-password",
    ) as sink:
        code = sink.wait(60)
    elapsed = time.monotonic() - started
    message = log_file.with_suffix(".err").read_text()
    assert code == 2, message
    assert "authentication failed" in message and "PORTFOLIO_MONGODB_PASSWORD" in message
    assert "wrong-password" not in message
    fault.report("wrong MongoDB password", "sink exited 2 naming authentication and the settings", elapsed)
