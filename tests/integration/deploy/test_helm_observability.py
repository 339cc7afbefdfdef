"""The chart's Grafana dashboard and PrometheusRule: both behind switches, and every metric
they reference is one the code exports.

The exported names come from the prometheus-client registries themselves (the gateway's
:class:`GatewayMetrics` and the runners' module-level metrics), with the suffixes Prometheus
sees: ``_total`` for counters, ``_bucket``/``_sum``/``_count`` for histograms.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import platform_runners.metrics  # noqa: F401  (registers the runner metrics)
from gateway.metrics import GatewayMetrics
from sockethub.devstack.tools import ensure_helm
from tests.integration.deploy.test_helm_chart import (
    CHART,
    FULL_VALUES,
    NO_KEYS,
    Manifest,
    kinds,
    one,
    render,
)

pytestmark = pytest.mark.timeout(2400)

METRIC = re.compile(r"\bsockethub_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",), "summary": ("_sum", "_count", "")}  # fmt: skip
ALERTS = {"SockethubConsumerLagGrowing", "SockethubDeadLetters", "SockethubRunnerNoTransaction",
          "SockethubRunnerTransactionStuck", "SockethubGatewayNotReady"}  # fmt: skip


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return ensure_helm()


def exported(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        if family.name.startswith("sockethub_"):
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


@pytest.fixture(scope="module")
def exported_names() -> set[str]:
    return exported(GatewayMetrics("gw").registry) | exported(REGISTRY)


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [str(v.get("definition", "")) for v in dashboard["templating"]["list"]]
    return exprs


def test_the_exported_names_are_what_prometheus_scrapes(exported_names: set[str]) -> None:
    assert {"sockethub_runner_dead_letters_total", "sockethub_runner_consumer_lag",
            "sockethub_gateway_request_seconds_bucket", "sockethub_gateway_sessions",
            "sockethub_gateway_ready"} <= exported_names  # fmt: skip
    assert "sockethub_runner_dead_letters" not in exported_names  # a counter's bare name


def test_both_are_off_by_default(helm_bin: Path) -> None:
    docs = render(helm_bin, *NO_KEYS)
    assert kinds(docs, "PrometheusRule") == []
    assert not [
        d for d in kinds(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]
    ]


@pytest.fixture(scope="module")
def full(helm_bin: Path) -> list[Manifest]:
    return render(helm_bin, "-f", str(FULL_VALUES))


def test_the_dashboard_configmap_carries_the_sidecar_label(
    full: list[Manifest], exported_names: set[str]
) -> None:
    config = one(full, "ConfigMap", "sh-sockethub-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Sockethub"}
    dashboard = json.loads(config["data"]["sockethub.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "sockethub.json").read_text())
    exprs = dashboard_exprs(dashboard)
    assert exprs and all(METRIC.search(e) for e in exprs if e), exprs
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used - exported_names == set(), "the dashboard names metrics the code does not export"
    # The alerting metrics are all on the dashboard.
    assert {"sockethub_runner_dead_letters_total", "sockethub_runner_consumer_lag",
            "sockethub_runner_transaction_open_seconds", "sockethub_gateway_sessions",
            "sockethub_runner_last_commit_timestamp_seconds"} <= used  # fmt: skip


def test_the_rules_alert_on_exported_metrics_only(
    full: list[Manifest], exported_names: set[str]
) -> None:
    rule = one(full, "PrometheusRule", "sh-sockethub")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    used: set[str] = set()
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"]
        assert 'namespace="chat"' in r["expr"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["expr"]
        names = set(METRIC.findall(r["expr"]))
        assert names, r["expr"]
        used |= names
    assert used - exported_names == set(), "the rules name metrics the code does not export"
    by_name = {r["alert"]: r for r in rules}
    # runnerIdleMinutes: 5 in values-full.yaml
    assert "> 300" in by_name["SockethubRunnerNoTransaction"]["expr"]
    assert "> 300" in by_name["SockethubRunnerTransactionStuck"]["expr"]
    # Prometheus' own templates reach Prometheus, not Helm.
    assert "{{ $labels.platform }}" in by_name["SockethubDeadLetters"]["annotations"]["summary"]


def test_an_unknown_metric_would_be_caught(exported_names: set[str]) -> None:
    """The check itself: a misspelt or bare counter name is not among the exported ones."""
    for wrong in ("sockethub_runner_dead_letters", "sockethub_runner_lag",
                  "sockethub_gateway_request_seconds"):  # fmt: skip
        assert wrong not in exported_names
