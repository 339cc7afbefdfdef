"""The Helm chart: lint, render with default and full values, validate offline.

Rendering never connects anywhere (``helm template`` without ``--validate``).
Every rendered manifest is checked against the Kubernetes OpenAPI schemas of the
``kubernetes-validate`` package; the ServiceMonitor, a CRD they do not cover, is
checked by hand.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from platform_runners.settings import SHUTDOWN_SLACK
from sockethub.devstack.tools import ensure_helm
from tests.integration.deploy.settings_check import load_deployed_settings

# The first run builds helm from source (minutes); later runs find it cached.
pytestmark = pytest.mark.timeout(2400)

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "helm" / "sockethub"
FULL_VALUES = REPO / "helm" / "values-full.yaml"
PLATFORMS = {"dummy", "feeds", "metadata", "irc", "xmpp", "caldav", "carddav"}
# The dummy test platform is off unless the values turn it on (values-full.yaml does).
DEFAULT_PLATFORMS = PLATFORMS - {"dummy"}
# The chart's defaults need one choice made: payload keys, or none on purpose. "default"
# renders below make the second one, so that they render what values.yaml says otherwise.
NO_KEYS = ("--set", "logKeys.disabled=true")
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest
# that kubernetes-validate knows.
K8S_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]

Manifest = dict[str, Any]
CRD_GROUPS = ("monitoring.coreos.com/", "gateway.networking.k8s.io/")


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    return ensure_helm()


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No kube context is needed or used: point KUBECONFIG at nothing.
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "KUBECONFIG": "/dev/null"}
    return subprocess.run([str(helm), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip


def render(helm: Path, *args: str) -> list[Manifest]:
    result = _helm(helm, "template", "sh", str(CHART), "--namespace", "chat", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _set(values: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-string", f"{key}={value}"]
    return out


def kinds(docs: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Iterable[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def runner_deployments(docs: Iterable[Manifest]) -> dict[str, Manifest]:
    return {
        d["metadata"]["labels"]["sockethub.org/platform"]: d
        for d in kinds(docs, "StatefulSet")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "runner"
    }


def container_env(deployment: Manifest) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module")
def default_docs(helm_bin: Path) -> list[Manifest]:
    return render(helm_bin, *NO_KEYS)


@pytest.fixture(scope="module")
def full_docs(helm_bin: Path) -> list[Manifest]:
    return render(helm_bin, "-f", str(FULL_VALUES))


# --- lint and schema validation -------------------------------------------------------


@pytest.mark.parametrize("values", [[*NO_KEYS], ["-f", str(FULL_VALUES)]], ids=["default", "full"])
def test_helm_lint_is_clean(helm_bin: Path, values: list[str]) -> None:
    result = _helm(helm_bin, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("which", ["default", "full"])
def test_every_manifest_is_valid_kubernetes(
    request: pytest.FixtureRequest, which: str, version: str
) -> None:
    docs: list[Manifest] = request.getfixturevalue(f"{which}_docs")
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue  # a CRD: checked in test_full_values_turn_everything_on
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {err}")
        checked += 1
    assert checked >= 9


# --- what the chart must do ------------------------------------------------------------


def test_one_runner_statefulset_per_enabled_platform(
    helm_bin: Path, default_docs: list[Manifest]
) -> None:
    runners = runner_deployments(default_docs)
    assert set(runners) == DEFAULT_PLATFORMS
    for platform, dep in runners.items():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["runners", "--platforms", platform]
        assert dep["metadata"]["name"] == f"sh-sockethub-runner-{platform}"
        # Each replica is its own runner instance (its Kafka transactional id).
        instance = next(e for e in container["env"] if e["name"] == "SOCKETHUB_INSTANCE")
        assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    docs = render(helm_bin, *NO_KEYS, "--set", "runners.platforms.irc.enabled=false",
                  "--set", "runners.platforms.feeds.enabled=false",
                  "--set", "runners.platforms.dummy.enabled=true")  # fmt: skip
    assert set(runner_deployments(docs)) == {"dummy", "metadata", "xmpp", "caldav", "carddav"}
    gateway_config = one(docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert gateway_config["SOCKETHUB_PLATFORMS"] == "caldav,carddav,dummy,metadata,xmpp"


def test_per_platform_replicas_and_resources(full_docs: list[Manifest]) -> None:
    runners = runner_deployments(full_docs)
    assert set(runners) == PLATFORMS
    assert {p: d["spec"]["replicas"] for p, d in runners.items()} == {
        "dummy": 1, "feeds": 3, "metadata": 2, "irc": 2, "xmpp": 2, "caldav": 1, "carddav": 1,
    }  # fmt: skip
    feeds = runners["feeds"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    dummy = runners["dummy"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert feeds["requests"]["cpu"] == "200m"
    assert dummy["requests"]["cpu"] == "50m"  # falls back to runners.resources
    assert container_env(runners["irc"])["SOCKETHUB_CONCURRENCY"]["value"] == "128"


def test_gateway_probes_port_and_unique_id(default_docs: list[Manifest]) -> None:
    gateway = one(default_docs, "StatefulSet", "sh-sockethub-gateway")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["gateway"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 10550, "protocol": "TCP"},
        {"name": "internal", "containerPort": 10551, "protocol": "TCP"},
    ]
    # probes on the internal port: the public one serves neither /readyz nor /metrics
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "internal"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "internal"}
    gateway_id = container_env(gateway)["SOCKETHUB_GATEWAY_ID"]
    assert gateway_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    config = one(default_docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert config["SOCKETHUB_HOST"] == "0.0.0.0"
    assert config["SOCKETHUB_PORT"] == "10550"
    assert config["SOCKETHUB_INTERNAL_HOST"] == "0.0.0.0"
    assert config["SOCKETHUB_INTERNAL_PORT"] == "10551"
    assert config["SOCKETHUB_DEMO"] == "false"
    service = one(default_docs, "Service", "sh-sockethub")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == (
        gateway["spec"]["template"]["metadata"]["labels"] | service["spec"]["selector"]
    )


def _checksums(docs: list[Manifest]) -> dict[str, str]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for d in kinds(docs, "StatefulSet")
    }


def test_checksum_annotation_rolls_pods_when_config_changes(
    helm_bin: Path, default_docs: list[Manifest]
) -> None:
    before = _checksums(default_docs)
    assert len(before) == 1 + len(DEFAULT_PLATFORMS)  # the gateway and each runner
    assert len(set(before.values())) == 1
    assert _checksums(render(helm_bin, *NO_KEYS)) == before  # stable: same values, same checksum
    assert _checksums(render(helm_bin, *NO_KEYS, "--set", "gateway.replicaCount=3")) == before

    changed = _checksums(render(helm_bin, *NO_KEYS, "--set", "kafka.topicPrefix=other"))
    assert changed.keys() == before.keys()
    assert all(changed[name] != before[name] for name in before)
    changed = _checksums(render(helm_bin, *NO_KEYS, "--set", "logLevel=DEBUG"))
    assert all(changed[name] != before[name] for name in before)

    secret_sums = {
        d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        for d in kinds(render(helm_bin, *NO_KEYS, *_set({"redis.url": "redis://other:6379/1"})),
                       "StatefulSet")
    }  # fmt: skip
    default_sums = {
        d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
        for d in kinds(default_docs, "StatefulSet")
    }
    assert len(secret_sums) == 1 and secret_sums != default_sums


SECRETS = {
    "secrets.secret": "server-secret-Zq8hT3",
    "secrets.logKeys": "k1:" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "redis.url": "redis://:redis-pass-Wm4x@redis.chat.svc:6379/0",
    "kafka.sasl.password": "sasl-pass-Pk2v",
}


def test_no_secret_value_outside_the_secret(helm_bin: Path) -> None:
    docs = render(
        helm_bin,
        "--set", "kafka.securityProtocol=SASL_SSL",
        "--set", "kafka.sasl.mechanism=SCRAM-SHA-256",
        "--set", "kafka.sasl.username=sockethub",
        *_set(SECRETS),
    )  # fmt: skip
    outside = json.dumps([d for d in docs if d["kind"] != "Secret"])
    for key, value in SECRETS.items():
        assert value not in outside, f"{key} leaks outside the Secret"
        assert base64.b64encode(value.encode()).decode() not in outside
        if ":" in value:  # also no fragment (e.g. the password inside the Redis URL)
            assert "redis-pass-Wm4x" not in outside
    for config in kinds(docs, "ConfigMap"):
        assert not any("PASSWORD" in k or k.endswith(("_SECRET", "LOG_KEYS", "REDIS_URL"))
                       for k in config["data"])  # fmt: skip

    (secret,) = kinds(docs, "Secret")
    stored = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert stored == {
        "secret": SECRETS["secrets.secret"],
        "log-keys": SECRETS["secrets.logKeys"],
        "redis-url": SECRETS["redis.url"],
        "kafka-sasl-password": SECRETS["kafka.sasl.password"],
    }
    for dep in kinds(docs, "StatefulSet"):
        env = container_env(dep)
        for name in ("SOCKETHUB_SECRET", "SOCKETHUB_LOG_KEYS", "SOCKETHUB_REDIS_URL",
                     "SOCKETHUB_KAFKA_SASL_PASSWORD"):  # fmt: skip
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "sh-sockethub"


def test_values_defaults_hold_no_secret() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["secrets"]["secret"] == ""
    assert values["secrets"]["logKeys"] == ""
    assert values["kafka"]["sasl"]["password"] == ""
    assert "@" not in values["redis"]["url"]  # no credentials in the default URL


def test_a_generated_server_secret_when_none_is_given(default_docs: list[Manifest]) -> None:
    (secret,) = kinds(default_docs, "Secret")
    assert set(secret["data"]) == {"secret", "redis-url"}
    assert len(base64.b64decode(secret["data"]["secret"])) == 48


def test_existing_secrets_are_referenced_not_rendered(full_docs: list[Manifest]) -> None:
    assert kinds(full_docs, "Secret") == []
    for dep in kinds(full_docs, "StatefulSet"):
        env = container_env(dep)
        refs = {n: env[n]["valueFrom"]["secretKeyRef"] for n in env if "valueFrom" in env[n]
                and "secretKeyRef" in env[n]["valueFrom"]}  # fmt: skip
        assert refs == {
            "SOCKETHUB_SECRET": {"name": "sockethub-secrets", "key": "server-secret"},
            # Required: the pods do not start without the key ring the values promise.
            "SOCKETHUB_LOG_KEYS": {"name": "sockethub-secrets", "key": "log-keys"},
            "SOCKETHUB_REDIS_URL": {"name": "sockethub-redis", "key": "url"},
            "SOCKETHUB_KAFKA_SASL_PASSWORD": {"name": "sockethub-kafka-user", "key": "password"},
        } | ({"SOCKETHUB_HTTP_ACTIONS_TOKEN": {"name": "sockethub-http-token", "key": "token"}}
             if dep["metadata"]["name"].endswith("-gateway") else {})  # fmt: skip


@pytest.mark.parametrize("which", ["default", "full"])
def test_pods_are_locked_down(request: pytest.FixtureRequest, which: str) -> None:
    docs: list[Manifest] = request.getfixturevalue(f"{which}_docs")
    deployments = kinds(docs, "StatefulSet")
    # The gateway and one runner per platform (dummy only in the full values).
    assert len(deployments) == 1 + len(PLATFORMS if which == "full" else DEFAULT_PLATFORMS)
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
        assert pod["serviceAccountName"] == ("sockethub" if which == "full" else "sh-sockethub")


def test_full_values_turn_everything_on(full_docs: list[Manifest]) -> None:
    ingress = one(full_docs, "Ingress", "sh-sockethub")
    assert ingress["spec"]["tls"] == [
        {"hosts": ["sockethub.example.test"], "secretName": "sockethub-tls"}
    ]
    assert ingress["spec"]["ingressClassName"] == "nginx"

    hpa = one(full_docs, "HorizontalPodAutoscaler", "sh-sockethub-gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sh-sockethub-gateway"
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu", "memory"]
    gateway = one(full_docs, "StatefulSet", "sh-sockethub-gateway")
    assert "replicas" not in gateway["spec"]  # the HPA owns it

    pdb = one(full_docs, "PodDisruptionBudget", "sh-sockethub-gateway")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"].items() <= (
        gateway["spec"]["template"]["metadata"]["labels"].items()
    )

    monitor = one(full_docs, "ServiceMonitor", "sh-sockethub-gateway")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [
        {"port": "internal", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
    ]
    # the monitor scrapes the internal Service only, never the public one
    internal = one(full_docs, "Service", "sh-sockethub-gateway-internal")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= internal["metadata"]["labels"].items()
    public = one(full_docs, "Service", "sh-sockethub")
    assert not selector.items() <= public["metadata"]["labels"].items()
    assert internal["spec"]["clusterIP"] == "None"
    assert internal["spec"]["ports"] == [
        {"name": "internal", "port": 9101, "targetPort": "internal", "protocol": "TCP"}
    ]

    common = one(full_docs, "ConfigMap", "sh-sockethub-common")["data"]
    assert common["SOCKETHUB_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert common["SOCKETHUB_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert common["SOCKETHUB_KAFKA_SSL_CAFILE"] == "/etc/sockethub/kafka-ca/ca.crt"
    assert common["SOCKETHUB_AUDIT_RETENTION_MS"] == "-1"
    assert common["SOCKETHUB_SCHEMA_REGISTRY_URL"] == "https://schema-registry.example.test"
    for dep in kinds(full_docs, "StatefulSet"):
        pod = dep["spec"]["template"]["spec"]
        assert {"name": "kafka-ca", "secret": {"secretName": "kafka-cluster-ca",
                "items": [{"key": "ca.crt", "path": "ca.crt"}]}} in pod["volumes"]  # fmt: skip
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "kafka-ca", "mountPath": "/etc/sockethub/kafka-ca",
                "readOnly": True} in mounts  # fmt: skip

    gateway_config = one(full_docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert gateway_config["SOCKETHUB_ALLOWED_ORIGINS"] == "https://sockethub.example.test"


# --- the schema and the chart's own checks refuse bad values ------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "kafka.securityProtocol=TLS",
        "kafka.bootstrapServers=",
        "kafka.bootstrapServers=no-port",
        "kafka.sasl.mechanism=GSSAPI",
        "gateway.replicaCount=0",
        "gateway.port=70000",
        "logLevel=verbose",
        "image.pullPolicy=Sometimes",
        "runners.platforms.Not_A_Name.enabled=true",
        "runners.platforms.smtp.replicas=one",
        "ingress.stickyController=envoy",
        "gateway.trustedProxies=10.0.0.0/8",
        "runners.platforms.irc.replicas=-1",
        "redis.url=http://redis:6379",
        "unknownTopLevelKey=1",
    ],
)
def test_schema_rejects_bad_values(helm_bin: Path, bad: str) -> None:
    for command in (["template", "sh"], ["lint"]):
        result = _helm(helm_bin, *command, str(CHART), "--set", bad)
        assert result.returncode != 0, f"helm {command[0]} accepted {bad}"
        assert "schema" in (result.stdout + result.stderr).lower(), result.stderr


def test_sasl_without_a_password_is_refused(helm_bin: Path) -> None:
    result = _helm(
        helm_bin, "template", "sh", str(CHART), *NO_KEYS,
        "--set", "kafka.securityProtocol=SASL_SSL", "--set", "kafka.sasl.mechanism=PLAIN",
    )  # fmt: skip
    assert result.returncode != 0
    assert "kafka.sasl.password or kafka.sasl.existingSecret is required" in result.stderr


# --- production defaults -------------------------------------------------------------------


def test_no_payload_keys_is_refused_unless_on_purpose(helm_bin: Path) -> None:
    # `helm install` renders as `template` does (`helm lint` reports a template's `fail`
    # only as information, by design).
    for values in ([], _set({"secrets.logKeys": ""})):
        result = _helm(helm_bin, "template", "sh", str(CHART), *values)
        assert result.returncode != 0
        assert "payload keys are required" in result.stderr
        assert "logKeys.disabled=true" in result.stderr
    assert _helm(helm_bin, "template", "sh", str(CHART), *NO_KEYS).returncode == 0


def _log_keys_ref(docs: list[Manifest]) -> list[dict[str, Any]]:
    return [
        container_env(dep)["SOCKETHUB_LOG_KEYS"]["valueFrom"]["secretKeyRef"]
        for dep in kinds(docs, "StatefulSet")
    ]


def test_payload_keys_reach_every_pod(helm_bin: Path, default_docs: list[Manifest]) -> None:
    key = SECRETS["secrets.logKeys"]
    docs = render(helm_bin, *_set({"secrets.logKeys": key}))
    (secret,) = kinds(docs, "Secret")
    assert base64.b64decode(secret["data"]["log-keys"]).decode() == key
    refs = _log_keys_ref(docs)
    assert refs and all(r == {"name": "sh-sockethub", "key": "log-keys"} for r in refs)
    # Keys in an existing Secret: accepted as given, and required there.
    docs = render(helm_bin, *_set({"secrets.existingSecret": "mine"}))
    assert all(r == {"name": "mine", "key": "log-keys"} for r in _log_keys_ref(docs))
    # Disabled on purpose: a key ring may still be added to the Secret later.
    assert all(r.get("optional") is True for r in _log_keys_ref(default_docs))


def test_dummy_platform_is_off_by_default(default_docs: list[Manifest]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["runners"]["platforms"]["dummy"]["enabled"] is False
    assert "dummy" not in runner_deployments(default_docs)
    platforms = one(default_docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert "dummy" not in platforms["SOCKETHUB_PLATFORMS"].split(",")
    rendered = json.dumps(default_docs)
    assert "SOCKETHUB_DUMMY_FAULTS" not in rendered


# --- the settings the chart renders are ones the programs read ----------------------------


def _settings_env(docs: list[Manifest], deployment: Manifest) -> dict[str, str]:
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        name = source.get("configMapRef", {}).get("name", "")
        if name.startswith("sh-sockethub"):  # the chart's own; extraEnvFrom is the site's
            env |= one(docs, "ConfigMap", name)["data"]
    for var in container["env"]:
        env[var["name"]] = var.get("value", "from-a-secret")
    env["SOCKETHUB_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    env.pop("SOCKETHUB_LOG_KEYS", None)  # a key ring has a format; its parsing is tested elsewhere
    return env


@pytest.mark.parametrize("which", ["default", "full"])
def test_every_rendered_setting_is_a_known_valid_setting(
    request: pytest.FixtureRequest, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.settings import GatewaySettings
    from platform_runners.settings import RunnerSettings

    docs: list[Manifest] = request.getfixturevalue(f"{which}_docs")
    for dep in kinds(docs, "StatefulSet"):
        gateway = dep["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
        model = GatewaySettings if gateway else RunnerSettings
        env = _settings_env(docs, dep)
        settings = load_deployed_settings(model, env, monkeypatch, dep["metadata"]["name"])
        assert (
            settings.kafka_bootstrap
            == one(docs, "ConfigMap", "sh-sockethub-common")["data"]["SOCKETHUB_KAFKA_BOOTSTRAP"]
        )


# --- issue 22: identities, probes, stickiness, shutdown, isolation ------------------------


def _pod(statefulset: Manifest) -> dict[str, Any]:
    pod: dict[str, Any] = statefulset["spec"]["template"]["spec"]
    return pod


def test_gateways_and_runners_are_statefulsets_named_by_their_pods(
    default_docs: list[Manifest],
) -> None:
    assert kinds(default_docs, "Deployment") == []
    gateway = one(default_docs, "StatefulSet", "sh-sockethub-gateway")
    assert gateway["spec"]["podManagementPolicy"] == "Parallel"
    assert gateway["spec"]["serviceName"] == "sh-sockethub-gateway-internal"
    assert container_env(gateway)["SOCKETHUB_GATEWAY_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    for platform, runner in runner_deployments(default_docs).items():
        assert runner["spec"]["podManagementPolicy"] == "Parallel"
        governing = one(default_docs, "Service", runner["spec"]["serviceName"])
        assert governing["spec"]["clusterIP"] == "None"
        assert governing["spec"]["selector"]["sockethub.org/platform"] == platform
        assert container_env(runner)["SOCKETHUB_INSTANCE"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.name"}
        }


@pytest.mark.parametrize("which", ["default", "full"])
def test_no_service_links_and_the_extras(request: pytest.FixtureRequest, which: str) -> None:
    docs: list[Manifest] = request.getfixturevalue(f"{which}_docs")
    for workload in kinds(docs, "StatefulSet") + kinds(docs, "Job"):
        assert workload["spec"]["template"]["spec"]["enableServiceLinks"] is False
    if which == "default":
        return
    gateway = _pod(one(docs, "StatefulSet", "sh-sockethub-gateway"))
    assert {"name": "site-ca", "configMap": {"name": "site-ca"}} in gateway["volumes"]
    (container,) = gateway["containers"]
    assert {"name": "site-ca", "mountPath": "/etc/site-ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert container["envFrom"][-1] == {"configMapRef": {"name": "sockethub-site"}}
    for runner in runner_deployments(docs).values():
        pod = _pod(runner)
        assert {"name": "plugins", "emptyDir": {}} in pod["volumes"]
        assert {"name": "plugins", "mountPath": "/opt/plugins"} in pod["containers"][0][
            "volumeMounts"
        ]
        assert pod["containers"][0]["envFrom"][-1] == {
            "secretRef": {"name": "sockethub-runner-extra"}
        }


def test_runners_have_probes_on_their_internal_port(default_docs: list[Manifest]) -> None:
    runners_config = one(default_docs, "ConfigMap", "sh-sockethub-runners")["data"]
    assert runners_config["SOCKETHUB_METRICS_HOST"] == "0.0.0.0"
    assert runners_config["SOCKETHUB_METRICS_PORT"] == "9102"
    for runner in runner_deployments(default_docs).values():
        (container,) = _pod(runner)["containers"]
        assert container["ports"] == [
            {"name": "internal", "containerPort": 9102, "protocol": "TCP"}
        ]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "internal"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "internal"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "internal"}


def test_shutdown_outlasts_the_runners_deadline_and_the_gateway_drains(
    helm_bin: Path, default_docs: list[Manifest]
) -> None:
    shutdown_slack = SHUTDOWN_SLACK
    grace = float(
        one(default_docs, "ConfigMap", "sh-sockethub-runners")["data"]["SOCKETHUB_SHUTDOWN_GRACE"]
    )
    for runner in runner_deployments(default_docs).values():
        assert _pod(runner)["terminationGracePeriodSeconds"] >= grace + shutdown_slack + 15
    gateway = _pod(one(default_docs, "StatefulSet", "sh-sockethub-gateway"))
    (container,) = gateway["containers"]
    assert container["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "10"]}}
    assert gateway["terminationGracePeriodSeconds"] > 10
    result = _helm(helm_bin, "template", "sh", str(CHART), *NO_KEYS,
                   "--set", "runners.terminationGracePeriodSeconds=30")  # fmt: skip
    assert result.returncode != 0
    assert "at least runners.shutdownGrace + 20 + 15 = 45" in result.stderr
    docs = render(helm_bin, *NO_KEYS, "--set", "runners.shutdownGrace=30",
                  "--set", "runners.terminationGracePeriodSeconds=65")  # fmt: skip
    assert (
        one(docs, "ConfigMap", "sh-sockethub-runners")["data"]["SOCKETHUB_SHUTDOWN_GRACE"] == "30"
    )


def _ingress_annotations(helm: Path, *args: str) -> dict[str, str]:
    docs = render(helm, *NO_KEYS, "--set", "ingress.enabled=true", *args)
    found: dict[str, str] = one(docs, "Ingress", "sh-sockethub")["metadata"].get("annotations", {})
    return found


def test_ingress_sticky_sessions_per_controller(helm_bin: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["ingress"]["stickySessions"] is True
    nginx = _ingress_annotations(helm_bin)
    assert nginx["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert nginx["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    assert nginx["nginx.ingress.kubernetes.io/session-cookie-name"] == "sockethub-affinity"
    assert _ingress_annotations(helm_bin, "--set", "ingress.className=haproxy") == {
        "haproxy.org/cookie-persistence": "sockethub-affinity"
    }
    # Traefik reads stickiness from the Service
    docs = render(helm_bin, *NO_KEYS, "--set", "ingress.enabled=true",
                  "--set", "ingress.className=traefik")  # fmt: skip
    assert "annotations" not in one(docs, "Ingress", "sh-sockethub")["metadata"]
    service = one(docs, "Service", "sh-sockethub")["metadata"]["annotations"]
    assert service["traefik.ingress.kubernetes.io/service.sticky.cookie"] == "true"
    assert service["traefik.ingress.kubernetes.io/service.sticky.cookie.name"] == (
        "sockethub-affinity"
    )
    # a class named otherwise: the controller is a value
    named = _ingress_annotations(helm_bin, "--set", "ingress.className=edge",
                                 "--set", "ingress.stickyController=haproxy")  # fmt: skip
    assert "haproxy.org/cookie-persistence" in named
    # user annotations win over the chart's
    mine = _ingress_annotations(
        helm_bin,
        "--set",
        "ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/affinity-mode=balanced",
    )
    assert mine["nginx.ingress.kubernetes.io/affinity-mode"] == "balanced"
    off = _ingress_annotations(helm_bin, "--set", "ingress.stickySessions=false")
    assert not any("affinity" in key for key in off)


def test_httproute_with_cookie_session_persistence(full_docs: list[Manifest]) -> None:
    route = one(full_docs, "HTTPRoute", "sh-sockethub")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "sh-sockethub", "port": 80}]
    assert rule["sessionPersistence"] == {"sessionName": "sockethub-affinity", "type": "Cookie"}


def _notes(helm: Path, chart: Path, *args: str) -> str:
    """NOTES.txt as rendered (``helm install --dry-run`` would need a cluster): a copy of the
    chart carries it as a named template, rendered into a ConfigMap."""
    if not chart.exists():
        shutil.copytree(CHART, chart)
        notes = (CHART / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "NOTES.txt").unlink()
        (chart / "templates" / "_notes.tpl").write_text(
            '{{- define "test.notes" }}' + notes + "{{- end }}"
        )
        (chart / "templates" / "notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
            'data:\n  notes: {{ include "test.notes" . | quote }}\n'
        )
    result = _helm(helm, "template", "sh", str(chart), "--namespace", "chat", *NO_KEYS, *args)
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return str(one(docs, "ConfigMap", "notes")["data"]["notes"])


def test_notes_warn_of_several_replicas_without_stickiness(helm_bin: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    warning = "WARNING: more than one gateway replica without sticky sessions"
    assert warning in _notes(helm_bin, chart)  # two replicas, no ingress, no route
    assert warning in _notes(helm_bin, chart, "--set", "ingress.enabled=true",
                             "--set", "ingress.stickySessions=false")  # fmt: skip
    assert warning not in _notes(helm_bin, chart, "--set", "ingress.enabled=true")
    assert warning not in _notes(helm_bin, chart, "--set", "gateway.replicaCount=1")
    assert warning not in _notes(helm_bin, chart, "--set", "httpRoute.enabled=true")


def test_trusted_proxies_are_plumbed_only_when_given(
    helm_bin: Path, default_docs: list[Manifest]
) -> None:
    config = one(default_docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert "SOCKETHUB_TRUSTED_PROXIES" not in config
    docs = render(helm_bin, *NO_KEYS, "--set", "gateway.trustedProxies={10.0.0.0/8,fd00::/8}")
    config = one(docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert config["SOCKETHUB_TRUSTED_PROXIES"] == "10.0.0.0/8,fd00::/8"


def test_http_actions_are_off_unless_enabled_and_the_token_is_a_secret_ref(
    default_docs: list[Manifest], full_docs: list[Manifest]
) -> None:
    config = one(default_docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert config["SOCKETHUB_HTTP_ACTIONS"] == "false"
    gateway = one(default_docs, "StatefulSet", "sh-sockethub-gateway")
    assert "SOCKETHUB_HTTP_ACTIONS_TOKEN" not in container_env(gateway)
    config = one(full_docs, "ConfigMap", "sh-sockethub-gateway")["data"]
    assert config["SOCKETHUB_HTTP_ACTIONS"] == "true"
    assert config["SOCKETHUB_HTTP_ACTIONS_PATH"] == "/sockethub-http"
    assert config["SOCKETHUB_HTTP_ACTIONS_MAX_MESSAGES"] == "10"
    env = container_env(one(full_docs, "StatefulSet", "sh-sockethub-gateway"))
    token = env["SOCKETHUB_HTTP_ACTIONS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "sockethub-http-token", "key": "token"}


def test_pod_monitor_for_the_runners(full_docs: list[Manifest]) -> None:
    monitor = one(full_docs, "PodMonitor", "sh-sockethub-runners")
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "internal", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for runner in runner_deployments(full_docs).values():
        assert selector.items() <= runner["spec"]["template"]["metadata"]["labels"].items()


def test_network_policy_keeps_runners_off_internal_addresses(full_docs: list[Manifest]) -> None:
    policy = one(full_docs, "NetworkPolicy", "sh-sockethub-runners")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    blocks = [
        peer["ipBlock"]
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    anywhere = {b["cidr"]: set(b.get("except", [])) for b in blocks}
    assert {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= anywhere[
        "0.0.0.0/0"
    ]
    assert {"fc00::/7", "fe80::/10"} <= anywhere["::/0"]
    assert anywhere["10.20.0.0/16"] == set()  # allowTo: the site's own servers
    gateway = one(full_docs, "NetworkPolicy", "sh-sockethub-gateway")
    ports = [rule["ports"][0]["port"] for rule in gateway["spec"]["ingress"]]
    assert ports == ["http", "internal"]


def test_third_party_platform_names_are_accepted(helm_bin: Path) -> None:
    docs = render(helm_bin, *NO_KEYS, "--set", "runners.platforms.matrix.enabled=true",
                  "--set", "runners.platforms.matrix.replicas=2")  # fmt: skip
    runners = runner_deployments(docs)
    assert runners["matrix"]["spec"]["replicas"] == 2
    assert _pod(runners["matrix"])["containers"][0]["args"] == ["runners", "--platforms", "matrix"]
    platforms = one(docs, "ConfigMap", "sh-sockethub-gateway")["data"]["SOCKETHUB_PLATFORMS"]
    assert "matrix" in platforms.split(",")


def test_topic_job_creates_every_topic_before_the_pods(
    default_docs: list[Manifest], full_docs: list[Manifest]
) -> None:
    assert kinds(default_docs, "Job") == []
    assert (
        "SOCKETHUB_CREATE_TOPICS"
        not in one(default_docs, "ConfigMap", "sh-sockethub-common")["data"]
    )
    job = one(full_docs, "Job", "sh-sockethub-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # reply topics for every gateway id the HPA may reach (maxReplicas 12)
    ids = [f"sh-sockethub-gateway-{n}" for n in range(12)]
    assert container["args"] == ["topics", "--gateway-ids", ",".join(ids)]
    env = {e["name"]: e for e in container["env"]}
    assert env["SOCKETHUB_PLATFORMS"]["value"] == ",".join(sorted(PLATFORMS))
    assert env["SOCKETHUB_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "sockethub-kafka-user", "key": "password"
    }  # fmt: skip
    common = one(full_docs, "ConfigMap", "sh-sockethub-common")["data"]
    assert common["SOCKETHUB_CREATE_TOPICS"] == "false"
