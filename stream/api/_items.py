"""Turn a validated request body into work items, enforcing the per-request limits."""

from __future__ import annotations

from typing import Any

from stream.api.errors import InvalidRequestError, TooManyItemsError
from stream.api.payloads import ArticleIn, EmailIn, PredictRequest, TicketIn
from stream.api.service import WorkItem
from stream.api.settings import ApiSettings


def _is_unicode(text: str) -> bool:
    # JSON's \ud800 escapes decode to lone surrogates, which are not Unicode text: the
    # tokenizer refuses them, and they cannot be written back out as UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_message(index: int, message: EmailIn | TicketIn | ArticleIn) -> WorkItem:
    return WorkItem(
        index=index, text=message.text_for_models(), message_id=message.id, kind=message.kind
    )


def work_items(body: PredictRequest, settings: ApiSettings) -> list[WorkItem]:
    """The request's texts in order; raises a 4xx error naming every item that breaks a limit."""
    if body.text is not None:
        items = [WorkItem(index=0, text=body.text, kind=body.kind)]
    elif body.texts is not None:
        items = [WorkItem(index=i, text=t, kind=body.kind) for i, t in enumerate(body.texts)]
    elif body.message is not None:
        items = [_from_message(0, body.message)]
    else:
        items = [_from_message(i, m) for i, m in enumerate(body.messages or [])]
    if not items:
        raise InvalidRequestError("the batch is empty: send at least one text or message")
    if len(items) > settings.max_items:
        raise TooManyItemsError(
            f"{len(items)} items in one request; the limit is {settings.max_items} "
            "(TEXTROUTE_API_MAX_ITEMS): split the batch"
        )
    problems: list[dict[str, Any]] = []
    for item in items:
        if not item.text.strip():
            what = "message has no text in its text fields" if item.message_id else "text is empty"
            problems.append(
                {
                    "index": item.index,
                    "reason": "empty_text",
                    "message": f"item {item.index}: {what}",
                }
            )
        elif not _is_unicode(item.text):
            problems.append(
                {
                    "index": item.index,
                    "reason": "invalid_text",
                    "message": f"item {item.index}: text has a lone surrogate (an unpaired "
                    "\\ud800-\\udfff escape), which is not Unicode text; send text as UTF-8",
                }
            )
        elif len(item.text) > settings.max_text_chars:
            problems.append(
                {
                    "index": item.index,
                    "reason": "text_too_long",
                    "message": f"item {item.index}: text has {len(item.text)} characters; the "
                    f"limit is {settings.max_text_chars} (TEXTROUTE_API_MAX_TEXT_CHARS)",
                }
            )
    if problems:
        raise InvalidRequestError(
            f"{len(problems)} of {len(items)} items cannot be processed; first: "
            f"{problems[0]['message']}",
            details=problems,
        )
    return items
