from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import DEFAULT_TICKERS, SettingsError, load_settings


def test_defaults_match_the_documented_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.mongo.uri == "mongodb://127.0.0.1:27017"
    assert settings.mongo.db == "portfolio"
    assert settings.common.tickers == list(DEFAULT_TICKERS)
    assert settings.producer.source == "synthetic"
    assert settings.common.download_period_s == 10
    assert settings.kafka.topics() == ("bars.1m", "predictions.1m", "bars.1m.dlq")
    assert str(settings.common.log_file) == "data.log"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_TICKERS", " aapl, MSFT ,brk-b,AAPL")
    monkeypatch.setenv("PORTFOLIO_DOWNLOAD_PERIOD_S", "2.5")
    monkeypatch.setenv("PORTFOLIO_BARS_TOPIC", "my.bars")
    settings = load_settings()
    assert settings.common.tickers == ["AAPL", "MSFT", "BRK-B"]
    assert settings.common.download_period_s == 2.5
    assert settings.kafka.bars_topic == "my.bars"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORTFOLIO_MONGODB_DB=from_dotenv\n")
    assert load_settings().mongo.db == "from_dotenv"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "0", "download_period_s"),
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "-3", "download_period_s"),
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "soon", "download_period_s"),
        ("PORTFOLIO_SOURCE", "bloomberg", "source"),
        ("PORTFOLIO_TICKERS", "", "tickers"),
        ("PORTFOLIO_TICKERS", " , ", "tickers"),
        ("PORTFOLIO_TICKERS", "AAPL,BRK.B", "tickers"),
        ("PORTFOLIO_MONGODB_URI", "postgres://x", "mongodb_uri"),
        ("PORTFOLIO_SHARD", "4/3", "shard"),
        ("PORTFOLIO_SHARD", "half", "shard"),
        ("PORTFOLIO_REPLAY_FILE", "/nonexistent/bars.csv", "replay_file"),
        ("PORTFOLIO_TRAINER_MODE", "ensemble", "trainer_mode"),
        ("PORTFOLIO_KAFKA_SECURITY_PROTOCOL", "TLS", "kafka_security_protocol"),
    ],
)
def test_bad_value_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)
    assert f"PORTFOLIO_{named.upper()}" in str(error.value)


def test_replay_source_needs_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_SOURCE", "replay")
    with pytest.raises(SettingsError, match="replay_file"):
        load_settings()


def test_topics_must_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_DLQ_TOPIC", "bars.1m")
    with pytest.raises(SettingsError, match="bars_topic"):
        load_settings()


def test_secrets_are_never_in_the_redacted_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_MONGODB_URI", "mongodb://svc:hunter2@db.example:27017/?authSource=admin")
    monkeypatch.setenv("PORTFOLIO_MONGODB_PASSWORD", "hunter3")
    monkeypatch.setenv("PORTFOLIO_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("PORTFOLIO_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("PORTFOLIO_KAFKA_SASL_PASSWORD", "hunter4")
    settings = load_settings()
    text = repr(settings) + str(settings.redacted())
    for secret in ("hunter2", "hunter3", "hunter4"):
        assert secret not in text
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "hunter4"


def test_sasl_mechanism_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(SettingsError, match="kafka_sasl_username"):
        load_settings()


@pytest.mark.parametrize(
    ("shard", "expected"), [("1/3", ["A", "D", "G"]), ("2/3", ["B", "E"]), ("3/3", ["C", "F"])]
)
def test_shards_split_tickers_without_overlap(
    monkeypatch: pytest.MonkeyPatch, shard: str, expected: list[str]
) -> None:
    monkeypatch.setenv("PORTFOLIO_TICKERS", "A,B,C,D,E,F,G")
    monkeypatch.setenv("PORTFOLIO_SHARD", shard)
    assert load_settings().shard_tickers() == expected


def test_placeholder_secret_from_the_example_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_MONGODB_PASSWORD", "change-me")
    with pytest.raises(SettingsError, match="mongodb_password"):
        load_settings()


def test_an_empty_log_file_means_no_log_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_LOG_FILE", "")
    assert load_settings().common.log_file is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "inf"),
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "nan"),
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "0"),
        ("PORTFOLIO_DOWNLOAD_PERIOD_S", "1e9"),
        ("PORTFOLIO_FETCH_BACKOFF_MAX_S", "inf"),
        ("PORTFOLIO_CHECKPOINT_INTERVAL_S", "-1"),
        ("PORTFOLIO_REPLAY_SPEED", "inf"),
        ("PORTFOLIO_LEARNING_RATE", "nan"),
        ("PORTFOLIO_MONGODB_TIMEOUT_S", "inf"),
        ("PORTFOLIO_MONGODB_SOCKET_TIMEOUT_S", "0"),
        ("PORTFOLIO_SINK_WRITE_STALL_S", "inf"),
        ("PORTFOLIO_STOP_TIMEOUT_S", "3600"),
        ("PORTFOLIO_SINK_BATCH_MS", "100000000"),
        ("PORTFOLIO_KAFKA_SESSION_TIMEOUT_MS", "100000000"),
    ],
)
def test_every_duration_is_finite_and_in_a_sane_range(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_a_poll_interval_below_the_session_timeout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_KAFKA_MAX_POLL_INTERVAL_MS", "5000")
    monkeypatch.setenv("PORTFOLIO_KAFKA_SESSION_TIMEOUT_MS", "10000")
    with pytest.raises(SettingsError, match="PORTFOLIO_KAFKA_MAX_POLL_INTERVAL_MS"):
        load_settings()


def test_an_infinite_period_stops_the_producer_at_start_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.cli import main

    monkeypatch.setenv("PORTFOLIO_DOWNLOAD_PERIOD_S", "inf")
    assert main(["producer"]) == 2
    assert "PORTFOLIO_DOWNLOAD_PERIOD_S" in capsys.readouterr().err


def test_the_dashboard_reads_where_each_service_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTFOLIO_DASHBOARD_SERVICE_HOSTS", " sink=sink , trainer=trainer.local")
    assert load_settings().dashboard.service_hosts == {"sink": "sink", "trainer": "trainer.local"}
    for bad in ("sink", "sink=", "reporter=report"):
        monkeypatch.setenv("PORTFOLIO_DASHBOARD_SERVICE_HOSTS", bad)
        with pytest.raises(SettingsError, match="PORTFOLIO_DASHBOARD_SERVICE_HOSTS"):
            load_settings()
