"""The deployment files are valid, and cannot drift from the settings the broker reads.

- every Kubernetes manifest under `deploy/k8s/` against the Kubernetes 1.30 schemas that
  `kubernetes-validate` ships, in strict mode (an unknown or misspelt field fails);
- `deploy/compose.yaml` against the Compose Specification's JSON schema
  (`tests/support/schemas/compose-spec.json`, vendored: its README says from where);
- every `SHARELOCK_*` name in those files is a variable that `sharelock.config.Settings` reads.

Each check is also run on a deliberately broken copy, which must fail: a validator that
accepts anything would otherwise pass unnoticed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from sharelock.config import Settings, load_settings
from sharelock.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
SCHEMA = ROOT / "tests" / "support" / "schemas" / "compose-spec.json"
SCHEMA_SHA256 = "1f91e091f16b2dd50ab8860e02bb391d22df553d91c145eacedb1b6eff9c3f0e"
KUBERNETES_VERSION = "1.30"
NAME = re.compile(r"\bSHARELOCK_[A-Z0-9_]+")


def settings_env_names() -> set[str]:
    """Every variable `Settings` reads: prefix + field name, and for nested models (retention,
    limits) prefix + field + delimiter + member, as pydantic-settings builds them."""
    config = Settings.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = str(config.get("env_nested_delimiter") or "__")
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        name = f"{prefix}{field_name.upper()}"
        names.add(name)
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names.update(f"{name}{delimiter}{member.upper()}" for member in nested.model_fields)
    return names


def unknown_names(text: str) -> set[str]:
    return set(NAME.findall(text)) - settings_env_names()


def k8s_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@cache
def compose_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def compose_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(compose_schema())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


# Kubernetes


def test_there_are_manifests_for_every_part() -> None:
    kinds = {doc["kind"] for path in K8S_FILES for doc in k8s_documents(path)}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    } <= kinds


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_manifest_is_valid_in_strict_mode(path: Path) -> None:
    documents = k8s_documents(path)
    assert documents, f"{path.name} holds no resource"
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def deployment() -> dict[str, Any]:
    return k8s_documents(DEPLOY / "k8s" / "deployment.yaml")[0]


def test_a_misspelt_kubernetes_field_fails() -> None:
    broken = copy.deepcopy(deployment())
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_broker_pod_is_locked_down_and_probed() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_configmap_and_pod_only_name_real_settings() -> None:
    configmap = k8s_documents(DEPLOY / "k8s" / "configmap.yaml")[0]
    assert configmap["metadata"]["name"] == "sharelock-settings"
    assert set(configmap["data"]) <= settings_env_names(), (
        set(configmap["data"]) - settings_env_names()
    )
    env = deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {item["name"] for item in env} <= settings_env_names()


@pytest.mark.parametrize("path", [*K8S_FILES, COMPOSE], ids=lambda p: p.name)
def test_every_sharelock_name_in_the_deployment_files_is_a_setting(path: Path) -> None:
    """Comments included: a comment naming a variable that does not exist misleads too."""
    assert unknown_names(path.read_text(encoding="utf-8")) == set()


def test_a_name_that_is_not_a_setting_is_caught() -> None:
    text = COMPOSE.read_text(encoding="utf-8").replace(
        "SHARELOCK_LOG_LEVEL", "SHARELOCK_LOGLEVEL", 1
    )
    assert unknown_names(text) == {"SHARELOCK_LOGLEVEL"}
    assert "SHARELOCK_LIMITS__PER_ADDRESS" in settings_env_names()


# Compose


def test_the_vendored_compose_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(compose()) == []


def test_a_broken_compose_file_fails() -> None:
    broken = compose()
    broken["services"]["haproxy"]["portz"] = broken["services"]["haproxy"].pop("ports")
    broken["services"]["broker-2"]["depends_on"]["broker-1"]["condition"] = "service_ready"
    errors = compose_errors(broken)
    assert any("portz" in error for error in errors), errors
    assert any(error.startswith("services/broker-2/depends_on") for error in errors), errors


def test_compose_has_every_part() -> None:
    services = compose()["services"]
    assert {"broker-1", "broker-2", "haproxy", "postgres", "redis-primary", "redis-replica"} <= set(
        services
    )
    assert sum(1 for name in services if name.startswith("redis-sentinel-")) == 3
    assert "sandbox" in services
    # Secrets are Compose secrets, not values in the file.
    assert all("file" in secret for secret in compose()["secrets"].values())


def test_compose_secrets_read_into_the_environment_are_settings() -> None:
    """deploy/docker-entrypoint.sh exports /run/secrets/SHARELOCK_* as variables."""
    for service in compose()["services"].values():
        for secret in service.get("secrets", []):
            if isinstance(secret, dict) and secret.get("target", "").startswith("SHARELOCK_"):
                assert secret["target"] in settings_env_names()


def local_mounts() -> list[str]:
    sources = set()
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and volume.startswith("./"):
                sources.add(volume.split(":", 1)[0])
    return sorted(sources)


@pytest.mark.parametrize("source", local_mounts())
def test_compose_mounts_files_of_this_repository(source: str) -> None:
    path = DEPLOY / source
    if not path.exists() and source.startswith("./redis/"):
        pytest.skip(f"{source} comes with the Redis high-availability work")
    assert path.is_file(), source


def test_haproxy_in_compose_runs_deploy_haproxy_cfg() -> None:
    haproxy = compose()["services"]["haproxy"]
    assert "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]
    assert {"LB_CERT", "LB_NODE1", "LB_NODE2"} <= set(haproxy["environment"])


def container_env(service: dict[str, Any]) -> dict[str, str]:
    """The SHARELOCK_* settings a container gets: its environment, plus the secrets that
    deploy/docker-entrypoint.sh exports (placeholder values)."""
    env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
    for secret in service.get("secrets", []):
        target = secret.get("target", "") if isinstance(secret, dict) else ""
        if target == "SHARELOCK_DATABASE_URL":
            env[target] = "postgresql+psycopg://user:placeholder@postgres/sharelock"
        elif target.startswith("SHARELOCK_"):
            env[target] = "placeholder"
    return env


def load_with(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [key for key in os.environ if key.startswith("SHARELOCK_")]:
        monkeypatch.delenv(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


@pytest.mark.parametrize(
    "service",
    [
        name
        for name, body in compose()["services"].items()
        if any(key.startswith("SHARELOCK_") for key in body.get("environment") or {})
    ],
)
def test_each_compose_service_has_a_coherent_configuration(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each container's settings load: a variable that needs another (a Redis user without
    its password, TLS without its key) would stop it at start-up."""
    load_with(container_env(compose()["services"][service]), monkeypatch)


def test_an_incoherent_container_configuration_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    env = container_env(compose()["services"]["broker-1"])
    del env["SHARELOCK_REDIS_PASSWORD"]  # as if the secret were forgotten
    with pytest.raises(ConfigError, match="SHARELOCK_REDIS_PASSWORD"):
        load_with(env, monkeypatch)


def test_the_kubernetes_pod_has_a_coherent_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap plus the pod's variables from the Secret (placeholder values) load."""
    configmap = k8s_documents(DEPLOY / "k8s" / "configmap.yaml")[0]
    env = dict(configmap["data"])
    for item in deployment()["spec"]["template"]["spec"]["containers"][0]["env"]:
        env[item["name"]] = item.get("value", "placeholder")
    env["SHARELOCK_DATABASE_URL"] = "postgresql+psycopg://user:placeholder@postgres/sharelock"
    load_with(env, monkeypatch)
