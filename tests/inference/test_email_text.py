"""Email bodies to model text (HTML, quoted replies, signatures, whitespace); raw MIME parsing."""

from __future__ import annotations

import time

import pytest

from inference import (
    EmailParseError,
    InferenceError,
    clean_email_body,
    looks_like_html,
    normalize_whitespace,
    parse_raw_email,
)
from schemas.errors import TextrouteError

NEWSLETTER_HTML = """<!DOCTYPE html>
<html><head><title>ACME Newsletter</title><style>p { color: #333; }</style></head>
<body><table width="100%"><tr><td>
<h1>Spring&nbsp;Update</h1>
<p>Dear customer,</p>
<p>our <b>new service portal</b> is live.<br>Log in at <a href="https://example.com">example.com</a>.</p>
<ul><li>Faster ticket handling</li><li>Dark mode</li></ul>
<script>trackOpen("abc")</script>
<!-- tracking pixel -->
</td></tr></table></body></html>"""

GMAIL_REPLY = """Hi Anna,

the invoice for March is still missing on my account. Could you resend it?

Thanks,
Peter

On Tue, Mar 4, 2025 at 10:12 AM Anna Schmidt <anna@example.com>
wrote:

> Hello Peter,
>
> your invoice has been sent on March 1st.
>
> Best regards,
> Anna
"""

GMAIL_HTML_REPLY = (
    '<div dir="ltr">Hi team,<div><br></div><div>the export still fails with error 42.</div>'
    '</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, Mar 4, 2025 '
    'at 10:12 AM Anna Schmidt &lt;<a href="mailto:anna@example.com">anna@example.com</a>&gt; '
    'wrote:<br></div><blockquote class="gmail_quote" style="margin:0 0 0 .8ex">Did you try '
    "again?</blockquote></div>"
)

OUTLOOK_REPLY = """Hello support,

The VPN client crashes on start since this morning's update.

Kind regards
Maria Lopez
IT Department

-----Original Message-----
From: Helpdesk <helpdesk@example.com>
Sent: Monday, March 3, 2025 9:15 AM
To: Maria Lopez <maria@example.com>
Subject: RE: VPN issue

Please install the latest update and restart.
"""

OUTLOOK_UNDERSCORE_REPLY = """Please reset my password, the link has expired.

________________________________
From: Service Desk <desk@example.com>
Sent: Wednesday, March 5, 2025 14:02
To: Tom Baker
Subject: Password reset

Here is your link: https://example.com/reset
"""

GERMAN_REPLY = """Hallo zusammen,

der Drucker im 2. Stock druckt seit gestern nur leere Seiten.

Viele Grüße
Jens

Am Mo., 3. März 2025 um 09:14 Uhr schrieb Service Desk <desk@example.de>:
> Guten Tag,
> bitte starten Sie den Drucker neu.
"""

FRENCH_REPLY = """Bonjour,

je n'arrive plus à me connecter au portail.

Cordialement,
Claire

Le lun. 3 mars 2025 à 09:14, Support <support@example.fr> a écrit :
> Bonjour Claire,
> votre compte est actif.
"""

DASH_SIGNATURE = """Hi,

my laptop battery drains in two hours. Can I get a replacement?

-- 
John Smith
Senior Accountant | ACME Corp
+1 555 0100
"""  # noqa: W291 - the "-- " delimiter has its trailing space (RFC 3676)

IPHONE = """Can you call me back about the contract renewal?

Sent from my iPhone
"""


# --- HTML ---------------------------------------------------------------------------------


def test_html_newsletter_becomes_its_visible_text_laid_out_in_lines() -> None:
    cleaned = clean_email_body(NEWSLETTER_HTML)
    assert cleaned.html
    assert cleaned.text == (
        "Spring Update\n\nDear customer,\n\nour new service portal is live.\n"
        "Log in at example.com.\n\nFaster ticket handling\nDark mode"
    )


def test_html_conversion_drops_script_style_comments_and_title() -> None:
    text = clean_email_body(NEWSLETTER_HTML).text
    for hidden in ("trackOpen", "color", "tracking pixel", "ACME Newsletter", "<"):
        assert hidden not in text


def test_plain_text_with_angle_bracket_placeholders_is_not_taken_for_html() -> None:
    body = "Dear <name>, my order #123 has < 5 items and <ACC-99> is missing."
    assert not looks_like_html(body)
    cleaned = clean_email_body(body)
    assert not cleaned.html
    assert cleaned.text == body
    assert not cleaned.changed


@pytest.mark.parametrize(
    "body",
    [GMAIL_REPLY, OUTLOOK_REPLY, "Write to <peter@example.com> or <b.smith@example.com>."],
)
def test_plain_text_with_addresses_in_angle_brackets_is_not_taken_for_html(body: str) -> None:
    assert not looks_like_html(body)
    assert not clean_email_body(body).html


@pytest.mark.parametrize(
    "body", ["<p>Hi</p>", "<BR/>", '<a href="x">y</a>', "<div\nclass=x>z</div>", "</td>"]
)
def test_html_tags_with_or_without_attributes_are_detected(body: str) -> None:
    assert looks_like_html(body)


def test_mime_type_overrides_detection_both_ways() -> None:
    assert clean_email_body("<p>Hello</p>", html=False).text == "<p>Hello</p>"
    assert clean_email_body("Fish &amp; chips", html=True).text == "Fish & chips"


# --- quoted replies -----------------------------------------------------------------------


def test_gmail_reply_keeps_only_the_new_text_above_on_wrote() -> None:
    cleaned = clean_email_body(GMAIL_REPLY)
    assert cleaned.text == (
        "Hi Anna,\n\nthe invoice for March is still missing on my account. Could you resend it?"
    )
    assert cleaned.quotes_removed
    assert cleaned.signature_removed
    assert cleaned.changed
    assert cleaned.removed_chars == len(GMAIL_REPLY) - len(cleaned.text)


def test_gmail_html_reply_loses_its_quote_after_conversion() -> None:
    cleaned = clean_email_body(GMAIL_HTML_REPLY)
    assert cleaned.html
    assert cleaned.quotes_removed
    assert cleaned.text == "Hi team,\nthe export still fails with error 42."


def test_outlook_original_message_header_and_what_follows_are_cut() -> None:
    cleaned = clean_email_body(OUTLOOK_REPLY)
    assert cleaned.text == (
        "Hello support,\n\nThe VPN client crashes on start since this morning's update."
    )
    assert cleaned.quotes_removed


def test_outlook_from_sent_block_under_underscores_is_cut() -> None:
    cleaned = clean_email_body(OUTLOOK_UNDERSCORE_REPLY)
    assert cleaned.text == "Please reset my password, the link has expired."


def test_german_am_schrieb_reply_and_viele_gruesse_are_cut() -> None:
    cleaned = clean_email_body(GERMAN_REPLY)
    assert cleaned.text == (
        "Hallo zusammen,\n\nder Drucker im 2. Stock druckt seit gestern nur leere Seiten."
    )
    assert cleaned.quotes_removed
    assert cleaned.signature_removed


def test_french_a_ecrit_reply_and_cordialement_are_cut() -> None:
    cleaned = clean_email_body(FRENCH_REPLY)
    assert cleaned.text == "Bonjour,\n\nje n'arrive plus à me connecter au portail."


def test_inline_quoted_lines_without_a_header_are_dropped() -> None:
    body = "> Did you restart the router?\nYes, twice.\n> Which firmware?\n2.3.1"
    cleaned = clean_email_body(body)
    assert cleaned.text == "Yes, twice.\n2.3.1"
    assert cleaned.quotes_removed


def test_a_message_that_is_only_a_quote_keeps_the_quoted_text() -> None:
    body = (
        "On Mon, Mar 3, 2025 at 9:00 AM Bob <bob@example.com> wrote:\n"
        "> The server is down again.\n> > Please check.\n"
    )
    assert clean_email_body(body).text == "The server is down again.\nPlease check."


def test_quotes_false_keeps_the_quoted_reply() -> None:
    cleaned = clean_email_body(GMAIL_REPLY, quotes=False)
    assert "wrote:" in cleaned.text
    assert "your invoice has been sent" in cleaned.text
    assert "Peter" not in cleaned.text.split("On Tue")[0]  # the signature still goes
    assert not cleaned.quotes_removed


# --- signatures ---------------------------------------------------------------------------


def test_dash_dash_space_delimiter_cuts_the_signature() -> None:
    cleaned = clean_email_body(DASH_SIGNATURE)
    assert cleaned.text == "Hi,\n\nmy laptop battery drains in two hours. Can I get a replacement?"
    assert cleaned.signature_removed
    assert not cleaned.quotes_removed


def test_sent_from_my_iphone_is_cut() -> None:
    cleaned = clean_email_body(IPHONE)
    assert cleaned.text == "Can you call me back about the contract renewal?"
    assert cleaned.signature_removed


def test_signature_false_keeps_the_sign_off() -> None:
    cleaned = clean_email_body(GMAIL_REPLY, signature=False)
    assert cleaned.text.endswith("Could you resend it?\n\nThanks,\nPeter")
    assert not cleaned.signature_removed


def test_a_sentence_starting_like_a_sign_off_is_not_cut_as_a_signature() -> None:
    cleaned = clean_email_body("Hi,\nThanks, that fixed the login problem!")
    assert cleaned.text == "Hi,\nThanks, that fixed the login problem!"
    assert not cleaned.signature_removed


def test_hyphen_lists_are_kept_and_not_taken_for_a_signature() -> None:
    body = "The app crashes:\n- open the app\n- click save\n\nIt happens every time."
    assert clean_email_body(body).text == body


def test_long_paragraph_lines_come_back_whole_around_the_reply_cut() -> None:
    paragraph = "On Monday the export job failed again with error 42 and " * 30 + "nothing else."
    body = f"Hi,\n\n{paragraph}\n\nThanks,\nPeter\n\n{GMAIL_REPLY.split('Peter', 1)[1].strip()}"
    cleaned = clean_email_body(body)
    assert cleaned.text == f"Hi,\n\n{paragraph}"
    assert cleaned.quotes_removed
    assert cleaned.signature_removed


def test_a_long_line_starting_like_a_reply_header_is_cleaned_in_linear_time() -> None:
    # mail-parser-reply's "On ... wrote:" pattern is quadratic in such a line's length
    # (8,000 characters: seconds); lines are shown to it cut at 200 characters.
    body = "Hello,\n\nOn " + "and so on " * 800 + "\nLe " + "et ainsi de suite " * 400
    started = time.perf_counter()
    cleaned = clean_email_body(body)
    assert time.perf_counter() - started < 0.5
    assert cleaned.text == normalize_whitespace(body)


# --- whitespace ---------------------------------------------------------------------------


def test_whitespace_is_normalised_crlf_nbsp_zero_width_and_blank_runs() -> None:
    body = "  Line\u00a0 one\u200b  \r\n\r\n\r\n\r\n\tLine two\ufeff\r\n \n"
    cleaned = clean_email_body(body, quotes=False, signature=False)
    assert cleaned.text == "Line one\n\nLine two"
    assert normalize_whitespace(body) == "Line one\n\nLine two"


def test_clean_text_comes_back_unchanged() -> None:
    body = "Please upgrade my plan to Business.\n\nThe account is ACC-1042."
    cleaned = clean_email_body(body)
    assert cleaned.text == body
    assert not (cleaned.changed or cleaned.quotes_removed or cleaned.signature_removed)
    assert cleaned.removed_chars == 0


def test_empty_body_gives_empty_text() -> None:
    assert clean_email_body("").text == ""
    assert clean_email_body("  \n\n ").text == ""


# --- raw RFC 822 / MIME -------------------------------------------------------------------

MULTIPART_WITH_ATTACHMENT = b"""\
From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>
To: Support <support@example.com>, billing@example.com
Subject: =?utf-8?q?Rechnung_f=C3=BCr_M=C3=A4rz?=
Date: Tue, 04 Mar 2025 10:12:00 +0100
Message-ID: <abc123@example.de>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Hallo,

die Rechnung f=C3=BCr M=C3=A4rz fehlt.

Viele Gr=C3=BC=C3=9Fe
J=C3=B6rg
--inner
Content-Type: text/html; charset="utf-8"

<html><body><p>Hallo,</p><p>die Rechnung fehlt (HTML).</p></body></html>
--inner--

--outer
Content-Type: application/pdf; name="scan.pdf"
Content-Disposition: attachment; filename="scan.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K
--outer--
"""


def test_multipart_alternative_prefers_text_plain_and_counts_the_attachment() -> None:
    parsed = parse_raw_email(MULTIPART_WITH_ATTACHMENT)
    assert parsed.subject == "Rechnung für März"
    assert parsed.sender == "Jörg Müller <joerg@example.de>"
    assert parsed.to == ("Support <support@example.com>", "billing@example.com")
    assert parsed.content_type == "text/plain"
    assert parsed.body == "Hallo,\n\ndie Rechnung für März fehlt.\n\nViele Grüße\nJörg"
    assert parsed.attachments == 1


def test_parsed_body_cleans_like_any_body() -> None:
    parsed = parse_raw_email(MULTIPART_WITH_ATTACHMENT)
    assert (
        clean_email_body(parsed.body, html=False).text == "Hallo,\n\ndie Rechnung für März fehlt."
    )


def test_html_only_message_is_converted_to_text() -> None:
    raw = (
        "From: news@example.com\nTo: you@example.com\nSubject: News\nMIME-Version: 1.0\n"
        'Content-Type: text/html; charset="utf-8"\n\n' + NEWSLETTER_HTML
    )
    parsed = parse_raw_email(raw)
    assert parsed.content_type == "text/html"
    assert parsed.body.startswith("Spring Update\n\nDear customer,")
    assert "trackOpen" not in parsed.body
    assert parsed.attachments == 0


def test_latin1_message_decodes_body_and_encoded_subject() -> None:
    raw = (
        b"From: kunde@example.de\r\nTo: support@example.com\r\n"
        b"Subject: =?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + "Die Lieferung für Köln ist beschädigt.\r\n".encode("latin-1")
    )
    parsed = parse_raw_email(raw)
    assert parsed.subject == "Grüße aus Köln"
    assert parsed.body == "Die Lieferung für Köln ist beschädigt."


def test_undeclared_8bit_charset_falls_back_to_utf8_then_windows_1252() -> None:
    head = b"From: a@example.com\nSubject: x\nContent-Transfer-Encoding: 8bit\n\n"
    assert parse_raw_email(head + "Größe: 5 €".encode()).body == "Größe: 5 €"
    assert parse_raw_email(head + "Größe: 5 €".encode("cp1252")).body == "Größe: 5 €"


def test_raw_8bit_headers_decode_as_utf8_or_windows_1252() -> None:
    tail = b"\nFrom: a@example.com\n\nBody"
    assert parse_raw_email("Subject: Größe €".encode() + tail).subject == "Größe €"
    assert parse_raw_email("Subject: Größe €".encode("cp1252") + tail).subject == "Größe €"


def test_str_input_with_non_ascii_body_is_taken_as_already_decoded() -> None:
    raw = (
        'From: a@example.com\nSubject: Olá\nContent-Type: text/plain; charset="utf-8"\n\n'
        "Não funciona."
    )
    parsed = parse_raw_email(raw)
    assert parsed.subject == "Olá"
    assert parsed.body == "Não funciona."


def test_attached_mail_counts_as_one_attachment() -> None:
    raw = (
        "From: a@example.com\nSubject: Fwd\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nSee the attached mail.\n"
        "--b\nContent-Type: message/rfc822\n\n"
        "From: c@example.com\nSubject: inner\nContent-Type: text/plain\n\nInner text.\n"
        "--b--\n"
    )
    parsed = parse_raw_email(raw)
    assert parsed.body == "See the attached mail."
    assert parsed.attachments == 1


def test_message_without_a_text_part_has_an_empty_body() -> None:
    raw = (
        "From: scanner@example.com\nSubject: Scan\nMIME-Version: 1.0\n"
        "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
    )
    parsed = parse_raw_email(raw)
    assert parsed.body == ""
    assert parsed.content_type is None
    assert parsed.attachments == 1


def test_missing_headers_give_empty_fields_not_errors() -> None:
    parsed = parse_raw_email("Subject: only a subject\n\nBody text.")
    assert (parsed.sender, parsed.to, parsed.body) == ("", (), "Body text.")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        (b"   \r\n", "empty"),
        ("Hello team,\nthe printer is broken.\n", "not an RFC 822 message"),
        (b"\x00\x01\x02 binary junk", "not an RFC 822 message"),
        (
            "From: a@example.com\nSubject: x\nContent-Type: multipart/mixed\n\nno boundary here",
            "NoBoundaryInMultipartDefect",
        ),
        (
            'From: a@example.com\nContent-Type: multipart/mixed; boundary="zz"\n\nno parts at all',
            "StartBoundaryNotFoundDefect",
        ),
    ],
)
def test_malformed_raw_email_raises_email_parse_error(raw: str | bytes, reason: str) -> None:
    with pytest.raises(EmailParseError, match=reason) as caught:
        parse_raw_email(raw)
    assert isinstance(caught.value, InferenceError)
    assert isinstance(caught.value, TextrouteError)
