"""Inbound wire messages: validation, aliases and the text the models see."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.messages import (
    MESSAGE_TYPES,
    ArticleMessage,
    EmailMessage,
    MessageKind,
    TicketMessage,
)


def test_email_reads_the_from_field_by_its_wire_name_and_writes_it_back() -> None:
    raw = '{"id": "e1", "from": "a@x.org", "to": "b@y.org", "subject": "Hi", "body": "Text"}'
    email = EmailMessage.model_validate_json(raw)
    assert email.sender == "a@x.org"
    assert email.to == ["b@y.org"]
    assert '"from":"a@x.org"' in email.model_dump_json(by_alias=True)


def test_models_see_subject_and_body_joined_by_a_newline() -> None:
    email = EmailMessage.model_validate(
        {"id": "e1", "from": "a@x", "to": ["b@y"], "subject": "Invoice", "body": "Please pay."}
    )
    assert email.text_for_models() == "Invoice\nPlease pay."


def test_an_empty_subject_is_skipped_so_offsets_start_at_the_body() -> None:
    ticket = TicketMessage(id="t1", customer="c9", subject="  ", body="Printer broken")
    assert ticket.text_for_models() == "Printer broken"


def test_article_text_is_headline_then_body() -> None:
    article = ArticleMessage(id="a1", headline="Stocks rally", body="Markets rose.", source="AP")
    assert article.text_for_models() == "Stocks rally\nMarkets rose."


@pytest.mark.parametrize(
    "payload",
    [
        {"from": "a@x", "to": ["b@y"], "body": "no id"},
        {"id": "", "from": "a@x", "to": ["b@y"], "body": "empty id"},
        {"id": 17, "from": "a@x", "to": ["b@y"], "body": "id is a number"},
        {"id": "e1", "from": "a@x", "to": [], "body": "no recipients"},
        {"id": "e1", "from": "a@x", "to": ["b@y"], "body": ["not", "a", "string"]},
        {"id": "e1", "from": "a@x", "to": ["b@y"]},
    ],
    ids=["missing-id", "empty-id", "numeric-id", "no-recipient", "body-list", "missing-body"],
)
def test_invalid_emails_are_rejected(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EmailMessage.model_validate(payload)


def test_ticket_priority_must_be_a_known_level() -> None:
    with pytest.raises(ValidationError, match="priority"):
        TicketMessage.model_validate(
            {"id": "t1", "customer": "c", "body": "x", "priority": "whenever"}
        )


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    article = ArticleMessage.model_validate(
        {"id": "a1", "body": "b", "source": "AP", "language": "en"}
    )
    assert not hasattr(article, "language")


def test_each_kind_maps_to_its_message_type() -> None:
    assert {kind: t.kind for kind, t in MESSAGE_TYPES.items()} == {k: k for k in MessageKind}
