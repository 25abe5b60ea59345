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
    ],
)
def test_out_of_range_values_are_refused(field: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(field))):
        ApiSettings(**field)  # type: ignore[arg-type]
