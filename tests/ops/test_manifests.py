"""deploy/: valid against the Kubernetes schemas (kubernetes-validate ships them: offline), and
consistent with the gateway: probes, replicas, secrets, commands, shutdown timing (issue 7)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from leerid_gateway.cli import build_parser
from leerid_gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes we promise to run on (docs/operations.md)


def documents() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


DOCS = documents()


@pytest.mark.parametrize("name", sorted(DOCS))
def test_manifest_is_valid_against_the_kubernetes_schema(name: str) -> None:
    kubernetes_validate.validate(DOCS[name], K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    broken = copy.deepcopy(DOCS["Deployment/leerid-gateway"])
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = copy.deepcopy(DOCS["Deployment/leerid-gateway"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_what_exists_and_leaves_the_secret_and_the_job_out() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert all((DEPLOY / name).is_file() for name in resources)
    assert "secret.example.yaml" not in resources  # real secrets are never committed
    assert "migrate-job.yaml" not in resources  # runs, and completes, before `apply -k`


def container(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    pod = (
        spec["jobTemplate"]["spec"]["template"]["spec"]
        if doc["kind"] == "CronJob"
        else spec["template"]["spec"]
    )
    assert len(pod["containers"]) == 1
    return dict(pod["containers"][0])


def test_deployment_runs_three_probed_replicas_with_a_disruption_budget() -> None:
    deployment = DOCS["Deployment/leerid-gateway"]
    assert deployment["spec"]["replicas"] == 3
    gateway = container(deployment)
    assert gateway["args"][0] == "serve" and "--proxy-headers" in gateway["args"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["resources"]["requests"] == {"cpu": "250m", "memory": "192Mi"}
    assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
    pod = deployment["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    pdb = DOCS["PodDisruptionBudget/leerid-gateway"]
    labels = pod["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert DOCS["Service/leerid-gateway"]["spec"]["selector"].items() <= labels.items()

    # Kubernetes waits longer than the gateway needs to drain and finish its requests.
    config = DOCS["ConfigMap/leerid-gateway-config"]["data"]
    needed = float(config["LEERID_SHUTDOWN_DRAIN_SECONDS"]) + float(config["LEERID_SHUTDOWN_TIMEOUT"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > needed


def test_jobs_run_commands_the_cli_has() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert container(DOCS["Job/leerid-gateway-migrate"])["args"] == ["migrate"]
    assert container(DOCS["CronJob/leerid-gateway-purge"])["args"] == ["purge"]
    assert {"serve", "migrate", "purge"} <= commands


def test_every_required_setting_comes_from_the_configmap_or_the_secret() -> None:
    config = DOCS["ConfigMap/leerid-gateway-config"]["data"]
    secret = DOCS["Secret/leerid-gateway"]["stringData"]
    assert {"LEERID_DATABASE_URL", "LEERID_OIDC_CLIENT_SECRET", "LEERID_SECRET_KEY"} <= set(secret)
    assert not set(config) & set(secret)
    required = {f"LEERID_{name.upper()}" for name, f in Settings.model_fields.items() if f.is_required()}
    assert required <= set(config) | set(secret)
    known = {f"LEERID_{name.upper()}" for name in Settings.model_fields}
    assert {key for key in config if key.startswith("LEERID_")} <= known  # no misspelt setting
    if config.get("LEERID_METRICS_ENABLED") == "true":
        assert "LEERID_METRICS_TOKEN" in secret
    for name in ("Deployment/leerid-gateway", "Job/leerid-gateway-migrate", "CronJob/leerid-gateway-purge"):
        sources = container(DOCS[name])["envFrom"]
        assert {"configMapRef": {"name": "leerid-gateway-config"}} in sources
        assert {"secretRef": {"name": "leerid-gateway"}} in sources
