"""Fixtures shared by every test. Integration tests get the real local stack and their own names."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent

# A developer's .env or PORTFOLIO_* variables must not change what the tests see.
for _name in [n for n in os.environ if n.startswith("PORTFOLIO_")]:
    if _name not in ("PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS", "PORTFOLIO_MONGODB_URI"):
        del os.environ[_name]


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def make_settings(**overrides: Mapping[str, Any]) -> Settings:
    """Settings for a test: no log file, ephemeral HTTP ports; ``overrides`` (by group, then field) win."""
    values: dict[str, dict[str, Any]] = {
        "common": {"log_file": None},
        "producer": {"http_port": 0},
        "sink": {"http_port": 0},
        "trainer": {"http_port": 0},
        "dashboard": {"port": 0},
    }
    return load_settings(**merge(values, overrides))


def merge(
    base: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Settings overrides by group: ``overrides`` win field by field."""
    return {group: {**base.get(group, {}), **overrides.get(group, {})} for group in {*base, *overrides}}


@pytest.fixture(scope="session")
def stack() -> None:
    """The local Kafka and FerretDB: started by ``make test``; started here too when pytest runs alone."""
    subprocess.run(["bash", str(REPO / "infra/local/stack.sh"), "up"], check=True)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings_factory(stack: None, unique: str) -> Iterator[Callable[..., Settings]]:
    """Build settings on this test's own topics and database; the database is dropped afterwards."""
    made: list[Settings] = []

    def factory(**overrides: Mapping[str, Any]) -> Settings:
        values: dict[str, dict[str, Any]] = {
            "kafka": {
                "bars_topic": f"test-{unique}.bars",
                "predictions_topic": f"test-{unique}.predictions",
                "dlq_topic": f"test-{unique}.dlq",
            },
            "mongo": {"db": f"test_{unique}"},
            "sink": {"group_id": f"test-{unique}-sink"},
            "trainer": {"group_id": f"test-{unique}-trainer"},
            "dashboard": {"group_id": f"test-{unique}-dashboard"},
        }
        settings = make_settings(**merge(values, overrides))
        made.append(settings)
        return settings

    yield factory
    if made:
        from shared.mongo import make_client

        with make_client(made[0]) as client:
            for name in {s.mongo.db for s in made}:
                client.drop_database(name)


@pytest.fixture
def integration_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()
