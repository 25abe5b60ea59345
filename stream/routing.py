"""Routing rules (YAML) and the router that turns predictions into a queue and its reasons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.entities import Classification, Entity
from schemas.events import RouteReason, RouteTarget
from schemas.messages import MessageKind
from stream._pydantic import summarize_validation_error
from stream.errors import RulesFileNotFoundError, RulesInvalidError

QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"
DEFAULT_RULES_RESOURCE = "default_rules.yaml"

Queue = Annotated[str, Field(pattern=QUEUE_PATTERN, description="Queue or desk name.")]


def _fold(text: str) -> str:
    # Case- and whitespace-insensitive, so "Acme  Corp" in text matches "acme corp" on a list.
    return " ".join(text.casefold().split())


class ReviewRule(BaseModel):
    """Messages the classifier is unsure about go to people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: Queue
    min_confidence: float = Field(ge=0.0, le=1.0)


class LanguageRule(BaseModel):
    """Messages in a language the pipeline's models were not trained for go to `queue`: an
    English model would route a German ticket with confidence and be wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    supported: list[str] = Field(
        min_length=1, description="ISO 639-1 codes the models handle, e.g. [en]."
    )
    queue: Queue
    candidates: list[str] | None = Field(
        default=None,
        description="The languages expected in the traffic (ISO 639-1), supported or not; "
        "naming them makes short texts far more reliable. Default: every language the "
        "detector knows.",
    )
    min_chars: int = Field(
        default=20,
        ge=0,
        description="Texts shorter than this are not checked: a few words do not tell a "
        "language reliably, and a short message must not bounce for it.",
    )

    @field_validator("supported", "candidates")
    @classmethod
    def _codes(cls, codes: list[str] | None) -> list[str] | None:
        if codes is None:
            return None
        bad = [c for c in codes if not (len(c) in (2, 3) and c.isascii() and c.isalpha())]
        if bad:
            raise ValueError(f"language codes must be ISO 639-1 like 'en', got {bad}")
        return [c.lower() for c in codes]


@dataclass(frozen=True)
class LanguageGuess:
    """The language found in a message's text (ISO 639-1, or 'und' when undetermined)."""

    code: str
    score: float


class EntityRule(BaseModel):
    """Send a message to `queue` when it mentions one of `values` as an entity of `type`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    type: str = Field(min_length=1, description="Entity type without BIO prefix, e.g. ORG.")
    values: list[str] = Field(min_length=1, description="Watch list, matched case-insensitively.")
    queue: Queue
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    kinds: list[MessageKind] = Field(
        default_factory=lambda: list(MessageKind), description="Message kinds it applies to."
    )

    @field_validator("values")
    @classmethod
    def _no_blank_values(cls, values: list[str]) -> list[str]:
        if any(not v.strip() for v in values):
            raise ValueError("watch-list values must not be blank")
        return values

    def match(self, kind: MessageKind, entities: Iterable[Entity]) -> Entity | None:
        """The first entity that triggers this rule, or None."""
        if kind not in self.kinds:
            return None
        watch = {_fold(v) for v in self.values}
        return next(
            (
                e
                for e in entities
                if e.type == self.type and e.score >= self.min_score and _fold(e.text) in watch
            ),
            None,
        )


class RoutingRules(BaseModel):
    """The whole rules file. Precedence: the language check, entity rules (in file order),
    then the review threshold, then the category map, then `default_queue`.

    A message in an unsupported language goes to the language queue alone. Otherwise it goes
    to every watch-list desk that matched and then either to review (when unsure) or to the
    desk of each of its labels (a multi-label message may reach several), or the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    default_queue: Queue
    review: ReviewRule | None = None
    categories: dict[str, Queue] = Field(default_factory=dict, description="Label -> queue.")
    entity_rules: list[EntityRule] = Field(default_factory=list)
    language: LanguageRule | None = None

    @field_validator("entity_rules")
    @classmethod
    def _unique_names(cls, rules: list[EntityRule]) -> list[EntityRule]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"entity rule names must be unique, repeated: {dupes}")
        return rules

    def check_labels(self, labels: Sequence[str]) -> list[str]:
        """Fail on category keys the classifier does not know; return its unmapped labels."""
        unknown = sorted(set(self.categories) - set(labels))
        if unknown:
            raise RulesInvalidError(
                f"routing rules map categories {unknown} that the classifier does not "
                f"predict (its labels: {list(labels)}); fix the spelling in the rules file "
                "or route with a matching model."
            )
        return [label for label in labels if label not in self.categories]


def parse_rules(text: str, *, source: str = "<string>") -> RoutingRules:
    """Validate rules from YAML text; errors name the source and the offending key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesInvalidError(f"routing rules {source} are not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesInvalidError(
            f"routing rules {source} must be a YAML mapping with at least `default_queue`, "
            f"got {type(data).__name__}"
        )
    try:
        return RoutingRules.model_validate(data)
    except ValidationError as exc:
        raise RulesInvalidError(
            f"routing rules {source} are invalid: {summarize_validation_error(exc)}"
        ) from exc


def load_rules(path: Path | str | None = None) -> RoutingRules:
    """Rules from `path`, or the packaged default rules when `path` is None."""
    if path is None:
        # Beside this module rather than importlib.resources: the editable install imports
        # `stream` as a namespace package from other directories, which resources rejects.
        text = (Path(__file__).parent / DEFAULT_RULES_RESOURCE).read_text(encoding="utf-8")
        return parse_rules(text, source=f"stream/{DEFAULT_RULES_RESOURCE}")
    path = Path(path)
    if not path.is_file():
        raise RulesFileNotFoundError(
            f"routing rules file {path} does not exist; pass --rules with a YAML file "
            "(see deploy/rules.example.yaml) or leave it unset for the default rules."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesInvalidError(f"cannot read routing rules {path}: {exc}") from exc
    return parse_rules(text, source=str(path))


@dataclass(frozen=True)
class RouteDecision:
    """Where a message goes and every rule that matched, the deciding one first."""

    queue: str
    reasons: list[RouteReason]
    #: Every destination, `queue` first, each with the rule that sent it there.
    routes: list[RouteTarget]


class Router:
    """Apply RoutingRules to one message's predictions."""

    def __init__(self, rules: RoutingRules) -> None:
        self.rules = rules

    def route(
        self,
        kind: MessageKind,
        classification: Classification,
        entities: Sequence[Entity],
        *,
        language: LanguageGuess | None = None,
    ) -> RouteDecision:
        """Pick the queues for a message; every matched rule is listed in `reasons`."""
        exclusive: list[tuple[str, RouteReason]] = []
        additive: list[tuple[str, RouteReason]] = []
        language_rule = self.rules.language
        if (
            language_rule is not None
            and language is not None
            and language.code != "und"
            and language.code not in language_rule.supported
        ):
            detail = (
                f"language {language.code!r} ({language.score:.2f}) is not one of "
                f"{language_rule.supported}"
            )
            exclusive.append(
                (language_rule.queue, RouteReason(rule="language:unsupported", detail=detail))
            )
        for rule in self.rules.entity_rules:
            hit = rule.match(kind, entities)
            if hit is not None:
                detail = f"{hit.type} {hit.text!r} (score {hit.score:.2f}) is on the watch list"
                additive.append(
                    (rule.queue, RouteReason(rule=f"entity:{rule.name}", detail=detail))
                )
        review = self.rules.review
        unsure: list[tuple[str, RouteReason]] = []
        if review is not None and classification.score < review.min_confidence:
            detail = (
                f"confidence {classification.score:.2f} for {classification.label!r} is below "
                f"{review.min_confidence:.2f}"
            )
            unsure.append((review.queue, RouteReason(rule="review:low-confidence", detail=detail)))
        by_label = self._by_label(classification)
        # The label desks stay in `reasons` when review wins, to show what the model thought.
        matched = exclusive + additive + unsure + by_label
        routes = exclusive[:1] or _unique_queues(additive + (unsure or by_label))
        return RouteDecision(
            queue=routes[0][0],
            reasons=[reason for _, reason in matched],
            routes=[RouteTarget(queue=q, rule=r.rule) for q, r in routes],
        )

    def _by_label(self, classification: Classification) -> list[tuple[str, RouteReason]]:
        """The desk of each label (every label over its threshold for a multi-label model),
        or the default queue when none has one."""
        if classification.labels is None:
            labels = [(classification.label, classification.score)]
        else:
            labels = [(ls.label, ls.score) for ls in classification.labels]
        found = []
        for label, score in labels:
            queue = self.rules.categories.get(label)
            if queue is not None:
                detail = f"category {label!r} ({score:.2f})"
                found.append((queue, RouteReason(rule=f"category:{label}", detail=detail)))
        if found:
            return found
        if classification.labels is not None and not classification.labels:
            detail = (
                f"no label reached its threshold (best {classification.label!r}, "
                f"{classification.score:.2f})"
            )
        elif classification.labels is not None:
            detail = f"no queue for labels {[label for label, _ in labels]}"
        else:
            detail = f"no queue for category {classification.label!r}"
        return [(self.rules.default_queue, RouteReason(rule="default", detail=detail))]


def _unique_queues(matched: list[tuple[str, RouteReason]]) -> list[tuple[str, RouteReason]]:
    """The first rule of each queue, in order: a message goes to a desk once."""
    seen: set[str] = set()
    out = []
    for queue, reason in matched:
        if queue not in seen:
            seen.add(queue)
            out.append((queue, reason))
    return out
