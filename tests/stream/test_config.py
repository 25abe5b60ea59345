"""Stream settings: environment variables, validation, Kafka client options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.messages import MessageKind
from stream.config import BrokerSettings, TopicSettings, WorkerSettings
from stream.faust_app import faust_broker_options


def test_worker_settings_come_from_textroute_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEXTROUTE_WORKER_BATCH_SIZE", "64")
    monkeypatch.setenv("TEXTROUTE_BROKER_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("TEXTROUTE_TOPIC_ROUTED", "routed.v2")

    settings = WorkerSettings()

    assert settings.batch_size == 64
    assert settings.broker.servers == ["k1:9092", "k2:9092"]
    assert settings.topics.routed == "routed.v2"


def test_a_blank_rules_path_or_ner_dir_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTROUTE_WORKER_RULES_PATH", "")
    monkeypatch.setenv("TEXTROUTE_WORKER_NER_DIR", "none")
    settings = WorkerSettings()
    assert settings.rules_path is None and settings.ner_dir is None


def test_topic_names_must_be_distinct_and_legal_for_kafka() -> None:
    with pytest.raises(ValidationError, match="distinct"):
        TopicSettings(routed="same", dead_letter="same")
    with pytest.raises(ValidationError, match="routed"):
        TopicSettings(routed="has space")


def test_inbound_topics_map_to_their_kinds() -> None:
    topics = TopicSettings(email="in.mail")
    assert topics.inbound()["in.mail"] is MessageKind.EMAIL
    assert topics.topic_for(MessageKind.EMAIL) == "in.mail"
    assert len(topics.all_topics()) == 8


def test_sasl_needs_mechanism_user_and_password() -> None:
    with pytest.raises(ValidationError, match="sasl_mechanism"):
        BrokerSettings(security_protocol="SASL_SSL")


def test_the_heartbeat_must_be_shorter_than_the_session_timeout() -> None:
    with pytest.raises(ValidationError, match="heartbeat"):
        BrokerSettings(session_timeout_s=1, heartbeat_interval_s=1)


def test_sasl_settings_pass_through_to_aiokafka_and_faust() -> None:
    import faust

    broker = BrokerSettings(
        bootstrap_servers="kafka.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="router",
        sasl_password="s3cret",
    )

    kwargs = broker.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert kwargs["ssl_context"] is not None
    options = faust_broker_options(broker)
    assert options["broker"] == ["kafka://kafka.example:9093"]
    credentials = options["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "router"
    assert "s3cret" not in repr(broker), "the password never shows in logs"


def test_plaintext_has_no_credentials_and_keeps_the_tansu_timeouts() -> None:
    options = faust_broker_options(BrokerSettings())
    assert "broker_credentials" not in options
    assert options["broker_session_timeout"] == 10.0
    assert options["broker_heartbeat_interval"] == 1.0


def test_topic_settings_round_trip_through_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = TopicSettings(email="a.mail", routed="a.routed", partitions=6)
    for name, value in topics.as_env().items():
        monkeypatch.setenv(name, value)
    assert TopicSettings() == topics
