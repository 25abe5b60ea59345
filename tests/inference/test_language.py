"""Language identification: the five ticket languages, restriction to candidates, "und"."""

from __future__ import annotations

import pytest

from inference import (
    DEFAULT_MIN_SCORE,
    UNDETERMINED,
    InferenceConfigError,
    LanguageGuess,
    detect_language,
    supported_languages,
)

TICKET_LANGUAGES = ("en", "de", "es", "fr", "pt")

SENTENCES = {
    "en": "My laptop does not start after the latest update, can you help me?",
    "de": "Mein Laptop startet nach dem letzten Update nicht mehr, können Sie mir helfen?",
    "es": "Mi portátil no arranca después de la última actualización, ¿pueden ayudarme?",
    "fr": "Mon ordinateur ne démarre plus depuis la dernière mise à jour, pouvez-vous m'aider ?",
    "pt": "O meu portátil não liga depois da última atualização, podem ajudar-me?",
}


@pytest.mark.parametrize("code", TICKET_LANGUAGES)
def test_a_sentence_in_each_ticket_language_is_identified(code: str) -> None:
    guess = detect_language(SENTENCES[code])
    assert guess.code == code
    assert guess.determined
    assert DEFAULT_MIN_SCORE <= guess.score <= 1.0


@pytest.mark.parametrize("code", TICKET_LANGUAGES)
def test_restricting_to_the_ticket_languages_keeps_them_identified(code: str) -> None:
    guess = detect_language(SENTENCES[code], candidates=TICKET_LANGUAGES)
    assert guess.code == code
    assert guess.score > 0.9


@pytest.mark.parametrize("text", ["ok", "", "   ", "12345 678", "#42 :-)"])
def test_too_short_or_letterless_text_is_undetermined_with_score_zero(text: str) -> None:
    assert detect_language(text) == LanguageGuess(UNDETERMINED, 0.0)
    assert not detect_language(text, candidates=TICKET_LANGUAGES).determined


def test_a_short_ambiguous_text_is_undetermined_rather_than_guessed() -> None:
    guess = detect_language("asdf qwer")
    assert guess.code == UNDETERMINED
    assert 0.0 < guess.score < DEFAULT_MIN_SCORE


def test_candidates_make_a_short_text_callable() -> None:
    # Among 140 languages a short English line is unclear; among five it is not.
    text = "Hello, my printer is broken."
    assert not detect_language(text).determined
    assert detect_language(text, candidates=TICKET_LANGUAGES).code == "en"


def test_the_answer_is_always_one_of_the_candidates_or_und() -> None:
    for text in SENTENCES.values():
        assert detect_language(text, candidates=["en", "de"]).code in {"en", "de", UNDETERMINED}


def test_a_restricted_call_leaves_unrestricted_calls_unaffected() -> None:
    detect_language(SENTENCES["fr"], candidates=["en", "de"])
    assert detect_language(SENTENCES["fr"]).code == "fr"


def test_candidate_codes_are_matched_case_insensitively() -> None:
    assert detect_language(SENTENCES["de"], candidates=[" DE", "En"]).code == "de"


def test_min_score_zero_always_names_a_language_for_a_text_with_letters() -> None:
    assert detect_language("see attached", min_score=0.0).determined


def test_min_score_one_never_names_a_language() -> None:
    assert detect_language(SENTENCES["en"], min_score=1.01).code == UNDETERMINED


def test_the_same_text_gets_the_same_answer() -> None:
    text = "Bitte um Rückruf"
    assert detect_language(text) == detect_language(text)


def test_supported_languages_include_the_ticket_languages() -> None:
    assert set(TICKET_LANGUAGES) <= supported_languages()


@pytest.mark.parametrize("candidates", [["en", "xx"], [], ["klingon"]])
def test_unknown_or_no_candidate_languages_raise_a_config_error(candidates: list[str]) -> None:
    with pytest.raises(InferenceConfigError):
        detect_language("Hello there, how are you?", candidates=candidates)
