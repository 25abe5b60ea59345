"""Email bodies made model text: HTML to text, quoted replies and signatures cut, MIME parsed."""

# Libraries, chosen on 2025-26 PyPI releases (pure Python or manylinux wheels for 3.10-3.13,
# no network and no model file at run time):
#
# HTML to text: html-text (MIT, Zyte, 36 kB, on lxml + lxml-html-clean). It drops scripts,
#   styles and comments and lays text out as a browser does (newlines around blocks, spaces
#   between inline elements), 83 us on a small newsletter. Not inscriptis (Apache-2.0, good
#   tables, but Python >= 3.11 while textroute supports 3.10, pulls requests, caps lxml < 6.2,
#   3x slower, pads lines with spaces), not html2text (GPL-3.0: not for an Apache-2.0
#   product, and it writes Markdown), not BeautifulSoup's get_text (no layout: inline elements
#   become lines; 4x slower), not selectolax (fastest, but keeps <script> text and has no
#   block layout, so it needs hand-written rules).
# Quoted replies and signatures: mail-parser-reply (MIT, 1.36 of 2025-12, 80 kB, no
#   dependencies). It splits a body at the headers mail clients write above a quote, in 13
#   languages ("On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :", "El ... escribió:",
#   Outlook's "From: ... Sent: ..." blocks and "-----Original Message-----"), and finds
#   signatures ("-- ", sign-offs such as "Best regards" / "Mit freundlichen Grüßen", "Sent from
#   my iPhone") and disclaimers. Not email-reply-parser (GitHub's port, English only, last
#   release 2020), not talon (Mailgun, last release 2017, old scikit-learn and cchardet pins),
#   not quotequail (quotes only, no signatures, sdist only).
# Raw messages: the standard library's `email` package; headers as policy=default reads them
#   (RFC 2047 decoded, address lists parsed), the MIME tree parsed under compat32 for speed.

from __future__ import annotations

import contextlib
import email
import email.errors
import email.policy
import functools
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message, MIMEPart
from typing import Any, Final

import html_text
from lxml_html_clean import Cleaner
from mailparser_reply import EmailMessage as _ReplyMessage

from inference.errors import EmailParseError

#: Languages whose reply headers and sign-offs are recognised. mail-parser-reply has no
#: Portuguese; Danish is left out on purpose: its sign-offs ("Tak", "Kh", "Hilsen") would cut
#: English and German lines that merely start with those letters.
REPLY_LANGUAGES: Final[tuple[str, ...]] = ("en", "de", "fr", "es", "it", "nl")

# A tag that only HTML has, in the first few kB: plain text with "<name>" placeholders,
# "<anna@example.com>" addresses or "a < b" is not mistaken for HTML. The MIME type, when there
# is one, decides instead of this.
_HTML_TAG = re.compile(
    r"<(?:!doctype\s+html|/?(?:html|head|body|div|p|br|hr|table|tr|td|th|span|a|b|i|u|font|"
    r"strong|em|ul|ol|li|img|h[1-6]|blockquote|center|style|meta)(?:\s[^<>]*)?/?)>",
    re.IGNORECASE,
)
_HTML_SNIFF_CHARS: Final = 4096

# html-text's own cleaner settings, plus <head> removed whole: a newsletter's <title> repeats
# the subject and is no part of the body.
_HTML_CLEANER: Final = Cleaner(
    scripts=True,
    javascript=False,
    comments=True,
    style=True,
    links=True,
    meta=True,
    page_structure=False,
    processing_instructions=True,
    embedded=True,
    frames=True,
    forms=False,
    annoying_tags=False,
    remove_unknown_tags=False,
    safe_attrs_only=False,
    kill_tags=["head"],
)

# Invisible characters that mail clients leave in bodies (zero-width space, word joiner, BOM,
# soft hyphen): they split words for a tokenizer without being seen by the writer.
_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))

# The longest line the reply parser sees whole. Its header patterns take time quadratic in the
# length of a line that starts like a header ("On", "Le", "Il"): a 2,000-character paragraph
# starting "On Monday" took 165 ms, a 4,000-character one 0.6 s. No reply header or sign-off
# line is this long, so a longer line is shown to the parser cut here, with a marker, and
# restored after.
_PARSER_LINE_CHARS: Final = 200

# Fewer words than this left by a signature cut may mean the cut took the message itself.
_MIN_WORDS_KEPT: Final = 4

# The headers an RFC 822 message has; a "message" with none of them is some other text.
_MAIL_HEADERS: Final = frozenset(
    ("from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type")
)

# The MIME structure is parsed under compat32 into EmailMessage objects (get_body,
# iter_parts), and only the headers read are built as policy=default builds them (_header):
# policy=default re-parses Content-Type through its header registry on every look-up, which
# made a parse of a small multipart mail 2.4 ms instead of 0.12 ms.
_STRUCTURE_POLICY: Final = email.policy.compat32.clone(message_factory=EmailMessage)

# Defects after which the MIME tree cannot be trusted: a multipart whose parts cannot be found.
# Lesser ones (a missing closing boundary, a bad header line) are common in real mail and the
# email package recovers from them.
_FATAL_DEFECTS: Final = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)


@dataclass(frozen=True, slots=True)
class CleanedText:
    """An email body as model text, and what cleaning took out of it."""

    text: str
    #: The body was HTML and was converted to text.
    html: bool
    #: Quoted replies ("On ... wrote:" and what follows, ">" lines) were cut.
    quotes_removed: bool
    #: A signature or a disclaimer was cut.
    signature_removed: bool
    #: Characters of the input not in `text` (markup, quotes, signature, whitespace).
    removed_chars: int
    #: `text` differs from the input.
    changed: bool


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """What a router needs of a raw RFC 822 / MIME message."""

    subject: str
    sender: str
    to: tuple[str, ...]
    #: The text of the body part, HTML converted to text; quotes and signature still in it
    #: (pass it to `clean_email_body(body, html=False)`).
    body: str
    #: "text/plain" or "text/html": the part `body` came from; None when there is no text part.
    content_type: str | None
    #: Parts that are not the body or its alternative text (files, images, attached mails).
    attachments: int


def looks_like_html(body: str) -> bool:
    """Whether `body` is HTML markup rather than plain text (an HTML tag near its start)."""
    return _HTML_TAG.search(body, 0, _HTML_SNIFF_CHARS) is not None


def html_to_text(html: str) -> str:
    """The visible text of an HTML document, laid out with newlines, whitespace normalised."""
    tree = html_text.parse_html(html)
    try:
        cleaned = _HTML_CLEANER.clean_html(tree)
    except AssertionError:
        # lxml's cleaner asserts on some malformed trees (lxml bug 1838497); html-text falls
        # back to the uncleaned tree the same way.
        cleaned = tree
    return normalize_whitespace(str(html_text.etree_to_text(cleaned)))


def normalize_whitespace(text: str) -> str:
    """One space between words, no space at line ends, at most one blank line, no invisible
    characters, trimmed."""
    lines: list[str] = []
    blank = False
    for line in text.translate(_INVISIBLE).splitlines():
        words = line.split()
        if not words:
            blank = True
            continue
        if blank and lines:
            lines.append("")
        lines.append(" ".join(words))
        blank = False
    return "\n".join(lines)


@functools.cache
def _reply_patterns() -> dict[str, Any]:
    # mail-parser-reply builds and compiles its three large patterns per message (about a third
    # of its time); they depend only on the languages, so they are compiled once and handed to
    # each message. The fields are EmailMessage's own dataclass parameters.
    proto = _ReplyMessage("", languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True)
    return {
        "_header_regex": proto.HEADER_REGEX,
        "_disclaimers_regex": proto.DISCLAIMERS_REGEX,
        "_signature_regex": proto.SIGNATURE_REGEX,
    }


def _split_replies(text: str) -> list[Any]:
    # keep_hyphen_lists: a "- step one" list is not a signature (the library's default cuts
    # from the first line starting with "-", which would cut a ticket's reproduction steps).
    message = _ReplyMessage(
        text, languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True, **_reply_patterns()
    )
    return list(message.read().replies)


def _shorten_long_lines(text: str) -> tuple[str, dict[str, str]]:
    tails: dict[str, str] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        line = line.strip()
        if len(line) > _PARSER_LINE_CHARS:
            # Private-use characters: not in any pattern's character classes, never stripped.
            marker = f"\ue000{len(tails)}\ue001"
            tails[marker] = line[_PARSER_LINE_CHARS:]
            lines[index] = line[:_PARSER_LINE_CHARS] + marker
    return "\n".join(lines), tails


def _restore_long_lines(text: str, tails: dict[str, str]) -> str:
    for marker, tail in tails.items():
        text = text.replace(marker, tail)
    return text


def _drop_quoted_lines(text: str) -> tuple[str, bool]:
    # ">" lines that no reply header introduces (inline answers under quoted questions). A line
    # test, not a pattern: mail-parser-reply only cuts quotes below a header.
    kept = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    dropped = len(kept) != text.count("\n") + 1
    return "\n".join(kept), dropped


def _unquote(text: str) -> str:
    # The quoted text itself, its ">" markers (nested ones too) taken off.
    lines = []
    for line in text.splitlines():
        line = line.lstrip()
        while line.startswith(">"):
            line = line[1:].lstrip()
        lines.append(line)
    return "\n".join(lines)


def _cut_too_much(kept: str, full: str) -> bool:
    # A sign-off pattern also matches a sentence that starts like one ("Hi,\nThanks, that
    # fixed it!"): a cut that leaves no more than a greeting and takes more words than it
    # keeps is taken for such a sentence, since a router is better off with a signature than
    # with no text.
    kept_words = len(kept.split())
    return kept_words < _MIN_WORDS_KEPT and kept_words * 2 < len(full.split())


def _latest_reply(text: str, *, signature: bool) -> tuple[str, bool, bool]:
    replies = _split_replies(text)
    bodies: list[tuple[str, bool]] = []
    for reply in replies:
        full = str(reply.full_body)
        cut = signature and bool(reply.signatures or reply.disclaimers)
        body = str(reply.body) if cut else full
        if cut and _cut_too_much(body, full):
            body, cut = full, False
        bodies.append((body, cut))
    # The newest reply is the first; when it has no text of its own (a forward, a reply
    # written below the quote) the first reply that has some is what the sender sent.
    for body, cut in bodies:
        unquoted, dropped = _drop_quoted_lines(body)
        if unquoted.strip():
            return unquoted, len(replies) > 1 or dropped, cut
    # Nothing but quoted lines: then the quote is the message.
    for body, cut in bodies:
        if body.strip():
            return _unquote(body), False, cut
    return "", False, False


def _without_signatures(text: str) -> tuple[str, bool]:
    # Quotes kept: each reply loses only its own signature and disclaimers.
    out = text.replace("\r\n", "\n")
    cut = False
    for reply in _split_replies(text):
        for part in [str(reply.signatures), *map(str, reply.disclaimers)]:
            if part and part in out:
                out = out.replace(part, "", 1)
                cut = True
    return out, cut


def clean_email_body(
    body: str, *, html: bool | None = None, quotes: bool = True, signature: bool = True
) -> CleanedText:
    """`body` as model text: HTML converted (`html`: True/False as the MIME type says, None to
    detect), quoted replies cut (`quotes`), the signature cut (`signature`), whitespace
    normalised. Pure; 0.2-0.4 ms for a typical reply."""
    is_html = looks_like_html(body) if html is None else html
    text = html_to_text(body) if is_html else body
    quotes_removed = signature_removed = False
    if quotes or signature:
        text, tails = _shorten_long_lines(text)
        if quotes:
            text, quotes_removed, signature_removed = _latest_reply(text, signature=signature)
        else:
            text, signature_removed = _without_signatures(text)
        text = _restore_long_lines(text, tails)
    text = normalize_whitespace(text)
    return CleanedText(
        text=text,
        html=is_html,
        quotes_removed=quotes_removed,
        signature_removed=signature_removed,
        removed_chars=max(0, len(body) - len(text)),
        changed=text != body,
    )


def _decode(data: bytes, charset: str | None) -> str:
    # The declared charset first; mail often declares none or lies (us-ascii over UTF-8), so
    # then UTF-8, then Windows-1252 (the usual undeclared 8-bit charset, a superset of
    # Latin-1's printable range), which decodes any byte.
    for candidate in (charset, "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except (LookupError, UnicodeDecodeError):
                pass
    return data.decode("cp1252", errors="replace")


def _part_text(part: Message, *, from_bytes: bool) -> str:
    cte = str(part.get("content-transfer-encoding", "7bit")).strip().lower()
    if not from_bytes and cte not in ("base64", "quoted-printable"):
        # Parsed from str: the payload is text already, and its charset parameter describes
        # bytes it no longer is (the email package would re-encode it as raw-unicode-escape).
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    data = part.get_payload(decode=True)
    return _decode(data, part.get_content_charset()) if isinstance(data, bytes) else ""


def _count_attachments(part: MIMEPart, body: MIMEPart | None) -> int:
    # Each header look-up re-parses the header under policy=default (the slow part of
    # parse_raw_email), so each part's Content-Type is read once.
    if part is body:
        return 0
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        return 1  # an attached mail counts once, not by its own parts
    if part.is_multipart():
        return sum([_count_attachments(sub, body) for sub in part.iter_parts()])
    if part.get_content_disposition() == "attachment":
        return 1
    if content_type.startswith("text/") and part.get_filename() is None:
        return 0  # the body's alternative (text/plain beside text/html) or a footer
    return 1


def _header(message: Message, name: str) -> Any:
    # The header as policy=default gives it (RFC 2047 words decoded, addresses parsed), built
    # from the raw value the structural parse kept. Raw 8-bit bytes in a header (RFC 6532
    # UTF-8, or a client's own charset) are decoded as a body's are: policy=default alone
    # reads only UTF-8 there and turns Windows-1252 into U+FFFD.
    for key, value in message.raw_items():
        if key.lower() == name:
            text = str(value)
            if not text.isascii():
                with contextlib.suppress(UnicodeEncodeError):
                    text = _decode(text.encode("ascii", "surrogateescape"), None)
            return email.policy.default.header_fetch_parse(key, text)
    return None


def _header_text(message: Message, name: str) -> str:
    value = _header(message, name)
    return "" if value is None else " ".join(str(value).split())


def _addresses(message: Message, name: str) -> tuple[str, ...]:
    value = _header(message, name)
    if value is None:
        return ()
    try:
        found = tuple(str(address) for address in getattr(value, "addresses", ()))
    except (email.errors.HeaderParseError, IndexError, ValueError):
        found = ()
    # An address list the parser could not split is still worth its text.
    return found or (" ".join(str(value).split()),)


def parse_raw_email(raw: str | bytes) -> ParsedEmail:
    """Subject, sender, recipients, body text (text/plain preferred, text/html converted) and
    the number of attachments of a raw RFC 822 / MIME message. Raises EmailParseError when
    `raw` has no mail headers or its MIME structure cannot be followed."""
    if not raw.strip():
        raise EmailParseError("the raw email is empty")
    message = (
        email.message_from_bytes(raw, policy=_STRUCTURE_POLICY)
        if isinstance(raw, bytes)
        else email.message_from_string(raw, policy=_STRUCTURE_POLICY)
    )
    if not _MAIL_HEADERS.intersection(key.lower() for key in message):
        raise EmailParseError(
            "not an RFC 822 message: none of the headers From, To, Subject, Date, Message-ID, "
            "MIME-Version, Content-Type before the first blank line"
        )
    fatal = sorted(
        {type(d).__name__ for part in message.walk() for d in part.defects}
        & {cls.__name__ for cls in _FATAL_DEFECTS}
    )
    if fatal:
        raise EmailParseError(f"malformed MIME structure: {', '.join(fatal)}")
    if not isinstance(message, EmailMessage):  # _STRUCTURE_POLICY's message_factory
        raise EmailParseError("the email package returned a legacy Message")
    part = message.get_body(preferencelist=("plain", "html"))
    content_type = part.get_content_type() if part is not None else None
    if part is None or content_type not in ("text/plain", "text/html"):
        body, content_type = "", None
    else:
        text = _part_text(part, from_bytes=isinstance(raw, bytes))
        body = html_to_text(text) if content_type == "text/html" else normalize_whitespace(text)
    return ParsedEmail(
        subject=_header_text(message, "subject"),
        sender=_header_text(message, "from"),
        to=_addresses(message, "to"),
        body=body,
        content_type=content_type,
        attachments=_count_attachments(message, part),
    )


__all__ = [
    "REPLY_LANGUAGES",
    "CleanedText",
    "ParsedEmail",
    "clean_email_body",
    "html_to_text",
    "looks_like_html",
    "normalize_whitespace",
    "parse_raw_email",
]
