"""Feedback records: what a reviewer's verdict must carry, and text that must be Unicode."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from schemas.feedback import Feedback

NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "fields",
    [
        {"label": "b\udc00"},
        {"labels": ["ok", "\ud800"]},
        {"label": "a", "reviewer": "ana\udfff"},
        {"label": "a", "comment": "\udc80"},
        {"entities": [{"start": 0, "end": 2, "label": "ORG\ud83d"}]},
    ],
)
def test_a_lone_surrogate_anywhere_is_refused(fields: dict[str, object]) -> None:
    """Every entry point (topic, API, CLI) validates with this schema, so none of them can
    take text that no UTF-8 output could carry."""
    body = {"message_id": "m1", "reviewer": "ana", "reviewed_at": NOW, **fields}
    with pytest.raises(ValidationError, match=r"lone surrogate|unicode string"):
        Feedback.model_validate(body)


def test_feedback_must_say_something_and_not_both_label_kinds() -> None:
    base = {"message_id": "m1", "reviewer": "ana", "reviewed_at": NOW}
    with pytest.raises(ValidationError, match="must carry"):
        Feedback.model_validate(base)
    with pytest.raises(ValidationError, match="not both"):
        Feedback.model_validate({**base, "label": "a", "labels": ["a"]})
    ok = Feedback.model_validate({**base, "label": "Sports", "comment": "héllo ✓"})
    assert ok.model_dump_json()
