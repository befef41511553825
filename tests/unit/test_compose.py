"""docker-compose.yml cannot run here (no Docker engine): check what it promises instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import DashboardSettings, variables

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_every_portfolio_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    seen = set()
    for service in compose["services"].values():
        for name in service.get("environment", {}):
            if name.startswith("PORTFOLIO_"):
                seen.add(name)
                assert name in variables(), f"{name} is not a setting"
    assert "PORTFOLIO_KAFKA_BOOTSTRAP_SERVERS" in seen


def test_the_pipeline_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("producer", "sink", "trainer"):
        service = services[name]
        assert service["build"]["args"]["SERVICE"] == name
        assert "/healthz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "mongodb": {"condition": "service_healthy"},
        }
    assert services["trainer"]["build"]["args"]["EXTRAS"] == "trainer"
    for name in ("kafka", "mongodb"):
        assert "healthcheck" in services[name]


def test_nothing_is_exposed_beyond_loopback_and_nothing_blocks_scaling(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "container_name" not in service, f"{name} has a container_name: --scale would fail"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_no_credentials_are_committed(compose: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    assert "${MONGO_ROOT_PASSWORD:?" in text
    mongodb = compose["services"]["mongodb"]["environment"]
    assert mongodb["MONGO_INITDB_ROOT_PASSWORD"].startswith("${")
    example = (REPO / ".env.example").read_text()
    assert "MONGO_ROOT_PASSWORD=change-me" in example


def test_the_dashboard_listens_where_its_settings_say_and_is_published_on_loopback(
    compose: dict[str, Any],
) -> None:
    dashboard = compose["services"]["dashboard"]
    port = DashboardSettings.model_fields["port"].default
    assert dashboard["build"]["args"] == {"SERVICE": "dashboard", "EXTRAS": "dashboard"}
    assert dashboard["environment"]["PORTFOLIO_DASHBOARD_PORT"] == port
    assert dashboard["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f":{port}/healthz" in " ".join(dashboard["healthcheck"]["test"])
