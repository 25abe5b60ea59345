"""Routing rules: validation of the YAML file and the router's precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.entities import Classification, Entity, LabelScore
from schemas.messages import MessageKind
from stream.errors import RulesFileNotFoundError, RulesInvalidError
from stream.routing import Router, load_rules, parse_rules

RULES = """
version: 1
default_queue: triage
review: {queue: human-review, min_confidence: 0.6}
categories: {Sports: desk.sports, Business: desk.business}
entity_rules:
  - {name: watch, type: ORG, values: [Acme Corp, Globex], queue: desk.watch, min_score: 0.5}
  - {name: vip, type: PER, values: [Mary Smith], queue: support.vip, kinds: [ticket]}
"""


def _clf(label: str, score: float) -> Classification:
    return Classification(label=label, score=score, top_k=[LabelScore(label=label, score=score)])


def _ent(type_: str, text: str, score: float = 0.9) -> Entity:
    return Entity(type=type_, text=text, start=0, end=len(text), score=score)


@pytest.fixture
def router() -> Router:
    return Router(parse_rules(RULES))


def test_a_confident_category_goes_to_its_queue(router: Router) -> None:
    decision = router.route(MessageKind.EMAIL, _clf("Sports", 0.9), [])
    assert decision.queue == "desk.sports"
    assert [r.rule for r in decision.reasons] == ["category:Sports"]


def test_an_unmapped_category_goes_to_the_default_queue(router: Router) -> None:
    decision = router.route(MessageKind.EMAIL, _clf("World", 0.9), [])
    assert decision.queue == "triage"
    assert decision.reasons[0].rule == "default"


def test_low_confidence_goes_to_human_review_before_the_category(router: Router) -> None:
    decision = router.route(MessageKind.ARTICLE, _clf("Sports", 0.59), [])
    assert decision.queue == "human-review"
    assert [r.rule for r in decision.reasons] == ["review:low-confidence", "category:Sports"]
    assert "0.59" in decision.reasons[0].detail


def test_a_watched_org_wins_over_review_and_category_case_insensitively(router: Router) -> None:
    decision = router.route(MessageKind.ARTICLE, _clf("Sports", 0.2), [_ent("ORG", "ACME  corp")])
    assert decision.queue == "desk.watch"
    assert [r.rule for r in decision.reasons] == [
        "entity:watch",
        "review:low-confidence",
        "category:Sports",
    ]


def test_an_entity_below_the_rule_min_score_does_not_trigger_it(router: Router) -> None:
    decision = router.route(MessageKind.EMAIL, _clf("Business", 0.9), [_ent("ORG", "Globex", 0.4)])
    assert decision.queue == "desk.business"


def test_an_entity_of_another_type_does_not_trigger_the_rule(router: Router) -> None:
    decision = router.route(MessageKind.EMAIL, _clf("Business", 0.9), [_ent("LOC", "Globex")])
    assert decision.queue == "desk.business"


def test_an_entity_rule_applies_only_to_its_kinds(router: Router) -> None:
    vip = [_ent("PER", "Mary Smith")]
    assert router.route(MessageKind.TICKET, _clf("Business", 0.9), vip).queue == "support.vip"
    assert router.route(MessageKind.ARTICLE, _clf("Business", 0.9), vip).queue == "desk.business"


def test_default_rules_ship_with_the_package_and_map_the_ag_news_labels() -> None:
    rules = load_rules()
    assert rules.check_labels(["World", "Sports", "Business", "Sci/Tech"]) == []


def test_example_rules_in_deploy_are_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "rules.example.yaml"
    rules = load_rules(example)
    assert rules.entity_rules, "the example should show entity rules"


def test_check_labels_rejects_categories_the_model_does_not_predict() -> None:
    rules = parse_rules(RULES)
    with pytest.raises(RulesInvalidError, match=r"\['Business'\].*does not predict"):
        rules.check_labels(["Sports", "World"])


def test_check_labels_returns_the_labels_that_fall_to_the_default_queue() -> None:
    rules = parse_rules(RULES)
    assert rules.check_labels(["Sports", "Business", "World"]) == ["World"]


def test_a_missing_rules_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(RulesFileNotFoundError, match="--rules"):
        load_rules(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default_queue: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("categories: {A: q}\n", "default_queue: Field required"),
        ("default_queue: ok\nreview: {queue: r, min_confidence: 1.5}\n", "review.min_confidence"),
        ("default_queue: 'bad queue!'\n", "default_queue: String should match pattern"),
        ("default_queue: q\ncategories: {A: 'has space'}\n", "categories.A"),
        ("default_queue: q\nunknown_key: 1\n", "unknown_key: Extra inputs"),
        (
            "default_queue: q\nentity_rules:\n  - {name: a, type: ORG, values: [x], queue: q}\n"
            "  - {name: a, type: ORG, values: [y], queue: q}\n",
            "unique",
        ),
        (
            "default_queue: q\nentity_rules: [{name: a, type: ORG, values: [], queue: q}]\n",
            "entity_rules.0.values",
        ),
        (
            "default_queue: q\nentity_rules: [{name: a, type: ORG, values: [x], queue: q, "
            "kinds: [fax]}]\n",
            "entity_rules.0.kinds.0",
        ),
    ],
    ids=[
        "bad-yaml",
        "not-mapping",
        "no-default",
        "threshold-range",
        "queue-name",
        "category-queue-name",
        "unknown-key",
        "duplicate-rule",
        "empty-watchlist",
        "unknown-kind",
    ],
)
def test_invalid_rules_fail_with_a_message_naming_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesInvalidError, match=expected) as info:
        load_rules(path)
    assert str(path) in str(info.value)
