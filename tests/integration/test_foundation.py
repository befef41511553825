"""The foundation against the real local stack: Kafka round trip, MongoDB upserts, ops endpoints, CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client import CollectorRegistry, Counter
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from shared.kafka import (
    ReliableProducer,
    client_config,
    ensure_topics,
)
from shared.mongo import BARS, database, ensure_indexes, make_client
from shared.ops import Health, OpsServer
from shared.settings import Settings
from testkit.kafka import consume, value_of

pytestmark = pytest.mark.integration


def test_messages_round_trip_through_the_broker_with_keys_and_headers(integration_settings: Settings) -> None:
    topic = integration_settings.kafka.bars_topic
    ensure_topics(integration_settings, [topic])
    producer = ReliableProducer(integration_settings, client_id="test")
    for i in range(100):
        producer.produce(topic, json.dumps({"i": i}).encode(), key=f"K{i % 7}", headers=[("h", b"x")])
    assert producer.flush(30) == 0
    assert producer.delivered == 100

    got = consume(integration_settings, topic, 100, group=f"{topic}-g")
    assert sorted(json.loads(value_of(m))["i"] for m in got) == list(range(100))
    assert {m.key() for m in got} == {f"K{i}".encode() for i in range(7)}
    # Same key, same partition: per-ticker order is what the sink and trainer rely on.
    partitions_per_key: dict[bytes, set[int]] = {}
    for m in got:
        partitions_per_key.setdefault(m.key() or b"", set()).add(m.partition() or 0)
    assert all(len(p) == 1 for p in partitions_per_key.values())
    # Offsets were committed: the same group sees nothing more.
    assert consume(integration_settings, topic, 1, group=f"{topic}-g", timeout=5) == []


def test_a_refused_delivery_is_resent_with_its_key_value_and_headers(integration_settings: Settings) -> None:
    topic = integration_settings.kafka.dlq_topic
    # The topic refuses messages over 1,000 bytes until its limit is raised: a real failed delivery.
    ensure_topics(integration_settings, [topic], partitions=1, config={"max.message.bytes": "1000"})
    producer = ReliableProducer(integration_settings, client_id="test", config={"message.timeout.ms": 2000})
    value = json.dumps({"pad": base64.b64encode(os.urandom(6000)).decode()}).encode()  # lz4 cannot shrink it
    producer.produce(topic, value, key="K1", headers=[("h", b"x")])
    deadline = time.monotonic() + 30
    while producer.failed_attempts == 0 and time.monotonic() < deadline:
        producer.poll(0.2)
    assert producer.failed_attempts >= 1 and producer.delivered == 0 and producer.pending == 1

    admin = AdminClient(client_config(integration_settings))
    raised = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "100000", incremental_operation=AlterConfigOpType.SET)
    ])  # fmt: skip
    for future in admin.incremental_alter_configs([raised]).values():
        future.result(30)
    assert producer.flush(30) == 0 and producer.delivered == 1
    (got,) = consume(integration_settings, topic, 1, group=f"{topic}-g")
    assert (got.key(), got.value(), got.headers()) == (b"K1", value, [("h", b"x")])


def test_topics_are_created_with_several_partitions(integration_settings: Settings) -> None:
    ensure_topics(integration_settings, integration_settings.kafka.topics())
    producer = ReliableProducer(integration_settings, client_id="test")
    metadata = producer.list_topics()
    for topic in integration_settings.kafka.topics():
        assert len(metadata.topics[topic].partitions) == 6


def test_database_inserts_upserts_and_counts_with_a_unique_index(integration_settings: Settings) -> None:
    with make_client(integration_settings) as client:
        db = database(client, integration_settings)
        ensure_indexes(db)
        ensure_indexes(db)  # idempotent
        ts = datetime(2026, 11, 25, 14, 31, tzinfo=UTC)
        db[BARS].insert_one({"ticker": "AAPL", "ts": ts, "close": 1.0})
        with pytest.raises(DuplicateKeyError):
            db[BARS].insert_one({"ticker": "AAPL", "ts": ts, "close": 2.0})
        db[BARS].bulk_write(
            [
                UpdateOne({"ticker": "AAPL", "ts": ts}, {"$set": {"close": 3.0}}, upsert=True),
                UpdateOne({"ticker": "MSFT", "ts": ts}, {"$set": {"close": 4.0}}, upsert=True),
            ],
            ordered=False,
        )
        assert db[BARS].count_documents({}) == 2
        doc = db[BARS].find_one({"ticker": "AAPL"})
        assert doc is not None
        assert doc["close"] == 3.0
        assert doc["ts"] == ts


def test_ops_server_answers_health_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("portfolio_test_messages", "test", registry=registry).inc(3)
    health = Health("kafka", "database")
    with OpsServer("127.0.0.1", 0, registry, health) as server:
        url = f"http://127.0.0.1:{server.port}"
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"{url}/healthz", timeout=5)
        assert not_ready.value.code == 503
        health.set("kafka", True)
        health.set("database", True)
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            assert json.loads(response.read())["ready"] is True
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            assert "portfolio_test_messages_total 3.0" in response.read().decode()


def test_cli_lists_the_services_and_rejects_bad_settings() -> None:
    listing = subprocess.run([sys.executable, "-m", "shared.cli", "--help"], capture_output=True, text=True)
    assert listing.returncode == 0
    for name in ("producer", "sink", "trainer"):
        assert name in listing.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "shared.cli", "producer"],
        capture_output=True,
        text=True,
        env={"PORTFOLIO_DOWNLOAD_PERIOD_S": "0", "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2
    assert "download_period_s" in bad.stderr
