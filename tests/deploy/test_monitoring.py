"""Grafana provisioning and dashboard: valid, wired to the Prometheus datasource, and querying
only metrics that the worker and the API really export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from stream.api.metrics import ApiMetrics
from stream.metrics import StreamMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "textroute.json"


def exported_names() -> set[str]:
    """Every sample name (with _total, _bucket, ... suffixes) the two registries can expose."""
    names: set[str] = set()
    for registry in (ApiMetrics().registry, StreamMetrics().registry):
        assert isinstance(registry, CollectorRegistry)
        for family in registry.collect():
            names.add(family.name)
            names.update(
                f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count")
            )
    return names


def targets(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in targets(dashboard) for name in re.findall(r"textroute_[a-z_]+", expr)}
    assert used, "the dashboard has queries"
    assert used <= exported_names(), used - exported_names()
    covered = " ".join(targets(dashboard))
    for must in (
        "textroute_consumer_lag",
        "textroute_dead_letters_total",
        "textroute_api_requests_total",
    ):
        assert must in covered


def test_dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    [source] = datasource["datasources"]
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        box = panel["gridPos"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "textroute.yml").read_text()
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["grafana"]["volumes"])
    [entry] = provider["providers"]
    folder = mounts[entry["options"]["path"]]
    assert (ROOT / folder / DASHBOARD.name).resolve() == DASHBOARD


ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def test_every_dashboard_and_alert_query_is_valid_promql() -> None:
    import promql_parser

    exprs = targets(json.loads(DASHBOARD.read_text())) + [r["expr"] for r in alert_rules()]
    for expr in exprs:
        promql_parser.parse(expr)  # raises on a syntax error


def test_alert_rules_watch_drift_with_exported_metrics_and_are_loaded() -> None:
    rules = alert_rules()
    used = {name for r in rules for name in re.findall(r"textroute_[a-z_]+", r["expr"])}
    assert used <= exported_names(), used - exported_names()
    names = {r["alert"] for r in rules}
    assert {"TextrouteReviewRateRising", "TextrouteLabelDistributionShift"} <= names
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["labels"]["severity"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["prometheus"]["volumes"])
    [rule_file] = prometheus["rule_files"]
    assert (ROOT / mounts[rule_file]).resolve() == ALERTS


def test_dashboard_shows_the_review_loop_and_drift() -> None:
    covered = " ".join(targets(json.loads(DASHBOARD.read_text())))
    for must in (
        "textroute_prediction_confidence_bucket",
        "textroute_training_label_share",
        "textroute_review_total",
        "textroute_feedback_total",
        "textroute_shadow_predictions_total",
    ):
        assert must in covered, must
