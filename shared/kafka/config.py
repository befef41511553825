"""What every Kafka client of the pipeline shares: connection and security settings, message headers, and
a refused login told apart from an outage."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from shared.settings import Settings, SettingsError

Headers = list[tuple[str, str | bytes | None]]


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security settings common to every client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "security.protocol": settings.kafka.security_protocol,
        # librdkafka logs every refused connection at error level; our own code logs outages once.
        "log_level": 3,
    }
    if settings.kafka.sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka.sasl_mechanism
        config["sasl.username"] = settings.kafka.sasl_username
        assert settings.kafka.sasl_password is not None
        config["sasl.password"] = settings.kafka.sasl_password.get_secret_value()
    if settings.kafka.ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka.ssl_ca_location)
    return config


def authentication_error(error: KafkaError) -> SettingsError | None:
    """A refused SASL login (or missing ACLs) as a settings error naming what to check; else None."""
    if error.code() not in (
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ):
        return None
    return SettingsError(
        f"Kafka authentication or authorization failed ({error.str()}): check PORTFOLIO_KAFKA_SASL_USERNAME, "
        "PORTFOLIO_KAFKA_SASL_PASSWORD, PORTFOLIO_KAFKA_SASL_MECHANISM and PORTFOLIO_KAFKA_SECURITY_PROTOCOL"
    )
