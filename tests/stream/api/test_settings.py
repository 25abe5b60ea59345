"""ApiSettings: TEXTROUTE_API_* environment variables, empty means unset, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stream.api import ApiSettings


def test_settings_come_from_textroute_api_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTROUTE_API_PORT", "9001")
    monkeypatch.setenv("TEXTROUTE_API_CLASSIFIER_DIR", "/models/c")
    monkeypatch.setenv("TEXTROUTE_API_BATCHING", "false")
    monkeypatch.setenv("TEXTROUTE_API_API_KEY", "k")
    monkeypatch.setenv("TEXTROUTE_API_LOG_LEVEL", "WARNING")
    settings = ApiSettings()
    assert settings.port == 9001
    assert settings.classifier_dir == Path("/models/c")
    assert settings.batching is False
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k"
    assert settings.log_level == "warning"
    assert "k" not in repr(settings.api_key)


def test_protection_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret-from-file\n", encoding="utf-8")
    monkeypatch.setenv("TEXTROUTE_API_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("TEXTROUTE_API_INSECURE", "true")
    monkeypatch.setenv("TEXTROUTE_API_MAX_CONCURRENT_REQUESTS", "3")
    monkeypatch.setenv("TEXTROUTE_API_REQUEST_TIMEOUT_S", "2.5")
    monkeypatch.setenv("TEXTROUTE_API_BATCH_QUEUE_MAX_ITEMS", "100")
    settings = ApiSettings()
    key = settings.effective_api_key()
    assert key is not None and key.get_secret_value() == "secret-from-file"
    assert settings.api_key is None and "secret" not in repr(settings)
    assert settings.insecure is True
    assert (settings.max_concurrent_requests, settings.request_timeout_s) == (3, 2.5)
    assert settings.batch_queue_max_items == 100


def test_the_batch_queue_must_hold_one_full_request() -> None:
    with pytest.raises(ValidationError, match=r"batch_queue_max_items \(10\) must be at least"):
        ApiSettings(max_items=64, batch_queue_max_items=10)


def test_empty_env_values_switch_optional_parts_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTROUTE_API_NER_DIR", "")
    monkeypatch.setenv("TEXTROUTE_API_API_KEY", "")
    monkeypatch.setenv("TEXTROUTE_API_RULES_PATH", "  ")
    settings = ApiSettings()
    assert settings.ner_dir is None and settings.api_key is None and settings.rules_path is None
    assert settings.model_dirs() == {"classifier": Path("models/classifier")}


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTROUTE_API_MAX_ITEMS", "5")
    assert ApiSettings(max_items=7).max_items == 7


@pytest.mark.parametrize(
    "field",
    [
        {"port": 70000},
        {"max_items": 0},
        {"batch_max_wait_ms": -1},
        {"log_level": "loud"},
        {"inference_threads": 0},
        {"max_concurrent_requests": 0},
        {"request_timeout_s": 0},
        {"batch_queue_max_items": 0},
    ],
)
def test_out_of_range_values_are_refused(field: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(field))):
        ApiSettings(**field)  # type: ignore[arg-type]
