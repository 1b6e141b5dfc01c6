"""Render the Kubernetes overlays (deploy/k8s/overlays/*) and check what comes out.

Every overlay is rendered once with ``kubectl kustomize``. Each object is validated
(strict: unknown fields are errors) against the Kubernetes OpenAPI schemas that the
``kubernetes-validate`` package ships, so this runs offline. Then the deployment policy
is checked: pod security, resources, probes, where secrets come from, migrations, and
for prod replicas, PodDisruptionBudgets and spreading. Where a service's settings model
(``ledgerlink.<service>.config.Config``) exists, it must parse the rendered environment.

Rendering happens at collection time so that the checks can be parametrized per object.
A failing render never breaks collection: ``test_overlay_renders`` fails instead and the
per-object tests of that overlay are skipped.
"""

from __future__ import annotations

import base64
import functools
import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from pydantic import BaseModel

pytestmark = pytest.mark.k8s

REPO_ROOT = Path(__file__).resolve().parents[1]
OVERLAYS_DIR = REPO_ROOT / "deploy" / "k8s" / "overlays"
OVERLAYS = ("dev", "prod")
SERVICES = ("auth", "importer", "journal-exporter")
#: Auth's secret settings (beyond its database URL) and their keys in its Secret.
AUTH_SECRET_SETTINGS = {
    "SESSION_SECRET": "session-secret",
    "SIGNIN__GOOGLE__CLIENT_SECRET": "google-client-secret",
    "SIGNIN__MICROSOFT__CLIENT_SECRET": "microsoft-client-secret",
}
# Parts that only the dev overlay deploys: the vendor sandboxes (no database, no broker,
# no secrets, no migrations, no /metrics; never in prod).
DEV_ONLY_SERVICES = ("sandbox",)
SANDBOX = "sandbox"
NAMESPACE = "ledgerlink"
# Kubernetes minor version whose schemas the manifests must satisfy (kubernetes-validate
# ships schemas for 1.25 ... 1.37; test_kubernetes_version_is_shipped guards this).
KUBERNETES_VERSION = "1.32"
APP_UID = 10001
HTTP_PORT = 8080
CONFIG_MODULES = {
    "auth": "ledgerlink.auth.config",
    "importer": "ledgerlink.importer.config",
    "journal-exporter": "ledgerlink.journal_exporter.config",
}
WORKLOAD_KINDS = frozenset({"Deployment", "Job"})
#: The Ingress of the browser-facing site (auth's pages, the payroll pages).
INGRESS = "ledgerlink-web"
#: Paths no browser may reach from outside the cluster: the token service and internal
#: routes, metrics, API documentation, health probes, the test clock.
CLUSTER_ONLY_PATHS = (
    "/internal/v1/connections/x/credentials",
    "/internal/v1/sessions/resolve",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/asyncapi.json",
    "/healthz",
    "/readyz",
    "/v1/payroll/mappings",
    "/v1/companies/5560000001/trial-balance",
    "/clock/advance",
)
#: Paths people open in a browser, and the Service that must answer them.
BROWSER_PATHS = {
    "/signin": "ledgerlink-auth",
    "/signin/google/callback": "ledgerlink-auth",
    "/activate/link/abc": "ledgerlink-auth",
    "/connect/visma_net/start": "ledgerlink-auth",
    "/environments/virtanen": "ledgerlink-auth",
    "/me": "ledgerlink-auth",
    "/v1/environments": "ledgerlink-auth",
    "/static/auth.css": "ledgerlink-auth",
    "/payroll": "ledgerlink-journal-exporter",
    "/payroll/mappings/new": "ledgerlink-journal-exporter",
    "/payroll/static/ledgerlink.css": "ledgerlink-journal-exporter",
}
# kustomize appends a 10-character content hash to generated ConfigMaps/Secrets.
HASH_SUFFIX = r"(-[a-z0-9]{10})?"

KUBECTL = shutil.which("kubectl")
NO_KUBECTL = "kubectl is not on PATH: cannot render the kustomize overlays"

Doc = dict[str, Any]


# --------------------------------------------------------------------------- render


@functools.cache
def _render(overlay: str) -> tuple[tuple[Doc, ...], str | None]:
    """Rendered objects of an overlay, or (empty, why it failed)."""
    assert KUBECTL is not None
    path = OVERLAYS_DIR / overlay
    try:
        proc = subprocess.run(
            [KUBECTL, "kustomize", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (), f"kubectl kustomize {path} timed out"
    if proc.returncode != 0:
        return (), f"kubectl kustomize {path} failed:\n{proc.stderr.strip()}"
    try:
        loaded = [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]
    except yaml.YAMLError as exc:
        return (), f"kubectl kustomize {path} printed invalid YAML: {exc}"
    docs = tuple(doc for doc in loaded if isinstance(doc, dict))
    if len(docs) != len(loaded):
        return (), f"kubectl kustomize {path} printed a document that is not a mapping"
    return docs, None


def _docs(overlay: str) -> tuple[Doc, ...]:
    """The rendered objects, for tests that look at the overlay as a whole."""
    if KUBECTL is None:
        pytest.skip(NO_KUBECTL)
    docs, error = _render(overlay)
    if error is not None:
        pytest.fail(error)
    return docs


def _doc_id(overlay: str, doc: Doc) -> str:
    return f"{overlay}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _doc_params(
    kinds: frozenset[str] | None = None,
    overlays: tuple[str, ...] = OVERLAYS,
    services: tuple[str, ...] | None = None,
) -> Any:
    """pytest params (overlay, doc), one per rendered object of the given kinds (and, with
    ``services``, only objects labelled app.kubernetes.io/name = one of them)."""
    if KUBECTL is None:
        return [
            pytest.param(None, None, id="no-kubectl", marks=pytest.mark.skip(reason=NO_KUBECTL))
        ]
    params = []
    for overlay in overlays:
        docs, error = _render(overlay)
        if error is not None:
            reason = f"overlay {overlay} does not render (see test_overlay_renders)"
            params.append(
                pytest.param(
                    overlay, None, id=f"{overlay}:unrendered", marks=pytest.mark.skip(reason=reason)
                )
            )
            continue
        params.extend(
            pytest.param(overlay, doc, id=_doc_id(overlay, doc))
            for doc in docs
            if (kinds is None or doc.get("kind") in kinds)
            and (services is None or _service_of(doc) in services)
        )
    return params


# -------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


def _service_of(doc: Doc) -> str | None:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    name = labels.get("app.kubernetes.io/name")
    return name if isinstance(name, str) else None


def _prefix(service: str) -> str:
    return "LEDGERLINK_" + service.upper().replace("-", "_") + "_"


def _find(docs: tuple[Doc, ...], kind: str, name: str) -> Doc | None:
    found = [d for d in docs if d.get("kind") == kind and d["metadata"].get("name") == name]
    assert len(found) <= 1, f"{len(found)} objects {kind}/{name}"
    return found[0] if found else None


def _containers(pod_spec: Doc) -> Iterator[Doc]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec.get("containers") or []


def _selector_matches(selector: Doc, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (an empty selector matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _effective_env(container: Doc, docs: tuple[Doc, ...]) -> dict[str, str | SecretRef]:
    """The container's environment: envFrom ConfigMaps, then env (which wins)."""
    env: dict[str, str | SecretRef] = {}
    for source in container.get("envFrom") or []:
        assert "configMapRef" in source, f"unexpected envFrom source {source}"
        name = source["configMapRef"]["name"]
        config_map = _find(docs, "ConfigMap", name)
        assert config_map is not None, f"envFrom references missing ConfigMap {name}"
        prefix = source.get("prefix", "")
        env.update({prefix + k: str(v) for k, v in (config_map.get("data") or {}).items()})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = SecretRef(ref["name"], ref["key"])
        else:  # fieldRef, resourceFieldRef, configMapKeyRef: not a literal value
            env[var["name"]] = "<valueFrom>"
    return env


def _workloads(docs: tuple[Doc, ...], service: str) -> list[Doc]:
    return [
        d
        for d in docs
        if d.get("kind") in WORKLOAD_KINDS
        and d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == service
    ]


def _container_port(container: Doc, port: int | str) -> int | None:
    """Resolve a probe/Service target port (number or name) against the container."""
    for declared in container.get("ports") or []:
        if port in (declared.get("name"), declared["containerPort"]):
            return int(declared["containerPort"])
    return None


def _image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name_and_tag = image.rsplit("/", 1)[-1]
    return ":" in name_and_tag and not name_and_tag.endswith(":latest")


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


def _secret_value(secret: Doc, key: str) -> str | None:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    if key in (secret.get("data") or {}):
        return _b64(secret["data"][key])
    return None


def _server(docs: tuple[Doc, ...], service: str) -> tuple[Doc, Doc]:
    deployment = _find(docs, "Deployment", f"ledgerlink-{service}")
    assert deployment is not None, f"no Deployment ledgerlink-{service}"
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "expected one container per server pod"
    return deployment, containers[0]


# ------------------------------------------------------------------ render & schema


def test_kubernetes_version_is_shipped() -> None:
    shipped = {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    }
    assert KUBERNETES_VERSION in shipped, f"kubernetes-validate ships {sorted(shipped)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    docs = _docs(overlay)
    assert docs, f"overlay {overlay} renders nothing"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc
    ids = [_doc_id(overlay, d) for d in docs]
    assert len(ids) == len(set(ids)), "duplicate objects"


@pytest.mark.parametrize(("overlay", "doc"), _doc_params())
def test_schema(overlay: str, doc: Doc) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "<root>"
        pytest.fail(f"{_doc_id(overlay, doc)} at {where}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(exc.message)


@pytest.mark.parametrize(("overlay", "doc"), _doc_params())
def test_namespace_and_labels(overlay: str, doc: Doc) -> None:
    meta = doc["metadata"]
    labels = meta.get("labels") or {}
    assert labels.get("app.kubernetes.io/part-of") == "ledgerlink", labels
    if doc["kind"] == "Namespace":
        assert meta["name"] == NAMESPACE
        return
    assert meta.get("namespace") == NAMESPACE, f"{_doc_id(overlay, doc)} not in {NAMESPACE}"
    allowed: tuple[str, ...] = SERVICES + DEV_ONLY_SERVICES if overlay == "dev" else SERVICES
    if doc["kind"] == "Ingress":
        allowed = (INGRESS,)  # one site, several services behind it
    assert labels.get("app.kubernetes.io/name") in allowed, labels


# -------------------------------------------------------------------- pod policy


@pytest.mark.parametrize(("overlay", "doc"), _doc_params(WORKLOAD_KINDS))
def test_workload_security_and_resources(overlay: str, doc: Doc) -> None:
    pod = doc["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext") or {}
    problems: list[str] = []
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("pod: automountServiceAccountToken must be false")
    if pod.get("serviceAccountName") in (None, "default"):
        problems.append("pod: needs its own serviceAccountName")
    if pod.get("enableServiceLinks") is not False:
        problems.append("pod: enableServiceLinks must be false (LEDGERLINK_* env collisions)")
    problems.extend(
        f"pod: {host_ns} must not be set"
        for host_ns in ("hostNetwork", "hostPID", "hostIPC")
        if pod.get(host_ns)
    )
    if pod_sc.get("fsGroup") != APP_UID:
        problems.append(f"pod: fsGroup must be {APP_UID}")
    tmp_volumes = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}

    containers = list(_containers(pod))
    if not containers:
        problems.append("pod: no containers")
    for c in containers:
        where = f"container {c['name']}"
        sc = c.get("securityContext") or {}

        def effective(field: str, sc: Doc = sc) -> Any:
            return sc.get(field, pod_sc.get(field))

        resources = c.get("resources") or {}
        problems.extend(
            f"{where}: resources.{section}.{resource} missing"
            for section in ("requests", "limits")
            for resource in ("cpu", "memory")
            if resource not in (resources.get(section) or {})
        )
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if effective("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if effective("runAsUser") != APP_UID or effective("runAsGroup") != APP_UID:
            problems.append(f"{where}: must run as uid/gid {APP_UID}")
        if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{where}: must not add capabilities")
        if not any(
            m["mountPath"] == "/tmp" and m["name"] in tmp_volumes
            for m in c.get("volumeMounts") or []
        ):
            problems.append(f"{where}: needs an emptyDir at /tmp (read-only root filesystem)")
        if not _image_is_pinned(c.get("image", "")):
            problems.append(f"{where}: image {c.get('image')!r} has no pinned tag or digest")
    assert not problems, f"{_doc_id(overlay, doc)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize(("overlay", "doc"), _doc_params(frozenset({"Deployment"})))
def test_deployment_probes_labels_and_scraping(overlay: str, doc: Doc) -> None:
    template = doc["spec"]["template"]
    labels = template["metadata"].get("labels") or {}
    assert _selector_matches(doc["spec"]["selector"], labels), "selector misses the pod labels"
    assert labels.get("app.kubernetes.io/component") == "server", labels
    assert labels.get("app.kubernetes.io/part-of") == "ledgerlink", labels

    # The sandbox has nothing behind it to be ready for (no database, no broker): its
    # readiness is its liveness. It serves no /metrics either.
    dev_only = _service_of(doc) in DEV_ONLY_SERVICES
    readiness_path = "/healthz" if dev_only else "/readyz"
    containers = template["spec"]["containers"]
    assert containers
    for c in containers:
        assert _container_port(c, "http") == HTTP_PORT, f"{c['name']}: needs port http={HTTP_PORT}"
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", readiness_path),
        ):
            http_get = (c.get(probe) or {}).get("httpGet")
            assert http_get is not None, f"{c['name']}: {probe} must be an httpGet probe"
            assert http_get.get("path") == path, f"{c['name']}: {probe} path {http_get.get('path')}"
            port = _container_port(c, http_get["port"])
            assert port == HTTP_PORT, f"{c['name']}: {probe} targets port {http_get['port']}"

    annotations = template["metadata"].get("annotations") or {}
    if dev_only:
        assert not any(key.startswith("prometheus.io/") for key in annotations), (
            f"{_doc_id(overlay, doc)} serves no /metrics: do not ask Prometheus to scrape it"
        )
        return
    assert annotations.get("prometheus.io/scrape") == "true", annotations
    assert annotations.get("prometheus.io/path") == "/metrics", annotations
    assert annotations.get("prometheus.io/port") == str(HTTP_PORT), annotations


# ------------------------------------------------------------ settings & secrets


@pytest.mark.parametrize(("overlay", "doc"), _doc_params(frozenset({"ConfigMap"})))
def test_configmaps_hold_no_secrets(overlay: str, doc: Doc) -> None:
    for key, value in (doc.get("data") or {}).items():
        assert not key.endswith(
            ("DATABASE__URL", "SECRET_KEY", "SESSION_SECRET", "CLIENT_SECRET")
        ), f"{key} belongs in a Secret"
        assert not re.search(r"://[^/\s]*:[^/\s]*@", str(value)), f"{key} carries credentials"


@pytest.mark.parametrize(("overlay", "doc"), _doc_params(WORKLOAD_KINDS, services=SERVICES))
def test_workload_settings(overlay: str, doc: Doc) -> None:
    docs = _docs(overlay)
    service = doc["metadata"]["labels"]["app.kubernetes.io/name"]
    p = _prefix(service)
    secret_name = re.compile(rf"ledgerlink-{re.escape(service)}-secrets{HASH_SUFFIX}")
    for c in doc["spec"]["template"]["spec"]["containers"]:
        env = _effective_env(c, docs)
        ref = env.get(f"{p}DATABASE__URL")
        assert isinstance(ref, SecretRef), f"{p}DATABASE__URL must come from a secretKeyRef"
        assert secret_name.fullmatch(ref.name), ref
        assert ref.key == "database-url", ref
        # No service reads a generic secret key: a Secret for it would only be a liability.
        assert f"{p}SECRET_KEY" not in env
        # Auth alone signs (session cookies) and talks to sign-in providers; those keys
        # come from its Secret, and no other service is given them.
        for var, key in AUTH_SECRET_SETTINGS.items():
            if service == "auth":
                ref = env.get(f"{p}{var}")
                assert isinstance(ref, SecretRef), f"{p}{var} must come from a secretKeyRef"
                assert secret_name.fullmatch(ref.name), ref
                assert ref.key == key, ref
            else:
                assert f"{p}{var}" not in env
        for var in (
            f"{p}KAFKA__BOOTSTRAP_SERVERS",
            f"{p}KAFKA__CLIENT_ID",
            f"{p}LOG_LEVEL",
            "OTEL_SERVICE_NAME",
        ):
            value = env.get(var)
            assert isinstance(value, str), f"{var} is not set"
            assert value, f"{var} is empty"
        all_interfaces = "0.0.0.0"  # noqa: S104 - what the pod must listen on
        assert env.get(f"{p}HTTP__HOST") == all_interfaces, "must listen on the pod's IP"
        assert env.get(f"{p}HTTP__PORT") == str(HTTP_PORT)
        if doc["kind"] == "Deployment":
            assert _container_port(c, "http") == int(str(env[f"{p}HTTP__PORT"]))


def _unknown_setting(model: type[BaseModel], path: list[str]) -> bool:
    """Whether ``SECTION__FIELD`` (already split) names no field of the settings model."""
    field = model.model_fields.get(path[0].lower())
    if field is None:
        return True
    if len(path) == 1:
        return False
    nested = field.annotation
    return not (isinstance(nested, type) and issubclass(nested, BaseModel)) or _unknown_setting(
        nested, path[1:]
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_service_config_accepts_rendered_env(
    overlay: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's own settings model parses the server's environment as rendered."""
    module_name = CONFIG_MODULES[service]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        pytest.skip(f"{module_name} does not exist yet")
    config_class = module.Config
    docs = _docs(overlay)
    _, container = _server(docs, service)
    p = _prefix(service)
    env = _effective_env(container, docs)

    typos = [
        k
        for k in env
        if k.startswith(p) and _unknown_setting(config_class, k[len(p) :].split("__"))
    ]
    assert not typos, f"{module_name}.Config has no such settings: {typos}"

    for key in [k for k in os.environ if k.startswith(p) or k.startswith("OTEL_")]:
        monkeypatch.delenv(key)
    placeholders = {  # prod Secrets live outside git: well-formed stand-ins
        "database-url": "postgresql+asyncpg://ledgerlink:placeholder@db.invalid:5432/ledgerlink",
        "session-secret": "placeholder-session-secret-of-at-least-32-characters",
        "google-client-secret": "placeholder-google-client-secret",
        "microsoft-client-secret": "placeholder-microsoft-client-secret",
        # Issue 12: auth's vault keys and the service tokens of its callers.
        "vault-keys": '{"1": "placeholder-vault-key-0123456789abcdef0123"}',
        "service-tokens": '{"importer": "placeholder-service-token-0123456789abcdef"}',
        # Issue 12: our Netvisor partner key and 24SevenOffice ApplicationId.
        "netvisor-partner-key": "placeholder-netvisor-partner-key",
        "twentyfour-application-id": "placeholder-24so-application-id",
        # Issue 13: the activation pages' Procountor client.
        "procountor-client-secret": "placeholder-procountor-client-secret",
        # Issue 13: the connection pages' Visma Connect client.
        "visma-connect-client-secret": "placeholder-visma-connect-client-secret",
        # Issue 14: the importer's own token at auth's token service.
        "service-token": "placeholder-service-token-0123456789abcdef",
        # Issue 15: the payroll routes' bearer tokens.
        "payroll-api-tokens": '{"ops": "placeholder-payroll-api-token-0123456789"}',
    }
    for key, value in env.items():
        if isinstance(value, SecretRef):
            secret = _find(docs, "Secret", value.name)
            resolved = _secret_value(secret, value.key) if secret else placeholders[value.key]
            assert resolved is not None, value
            value = resolved
        monkeypatch.setenv(key, value)

    config = config_class()
    assert config.http.host == env[f"{p}HTTP__HOST"]
    assert config.http.port == HTTP_PORT
    assert config.log_level == env[f"{p}LOG_LEVEL"]
    assert config.kafka.bootstrap_servers == env[f"{p}KAFKA__BOOTSTRAP_SERVERS"]
    assert config.database.url.get_secret_value().startswith("postgresql+asyncpg://")
    if overlay == "prod" and "environment" in config_class.model_fields:
        assert config.environment == "production"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_service_routes_to_server_pods_only(overlay: str, service: str) -> None:
    docs = _docs(overlay)
    deployment, container = _server(docs, service)
    svc = _find(docs, "Service", f"ledgerlink-{service}")
    assert svc is not None, f"no Service ledgerlink-{service}"
    ports = svc["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("http", 80)], ports
    assert _container_port(container, ports[0]["targetPort"]) == HTTP_PORT
    selector = {"matchLabels": svc["spec"]["selector"]}
    assert _selector_matches(selector, deployment["spec"]["template"]["metadata"]["labels"])
    for other in docs:
        if other.get("kind") == "Job" or (
            other.get("kind") == "Deployment" and other is not deployment
        ):
            pod_labels = other["spec"]["template"]["metadata"].get("labels") or {}
            assert not _selector_matches(selector, pod_labels), (
                f"Service ledgerlink-{service} would also route to {_doc_id(overlay, other)}"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_migration_job(overlay: str, service: str) -> None:
    docs = _docs(overlay)
    _, server = _server(docs, service)
    jobs = [
        d
        for d in _workloads(docs, service)
        if d["kind"] == "Job"
        and any(
            [*c.get("command", []), *c.get("args", [])] == [f"ledgerlink-{service}", "migrate"]
            for c in d["spec"]["template"]["spec"]["containers"]
        )
    ]
    assert len(jobs) == 1, f"expected one Job running ledgerlink-{service} migrate, got {len(jobs)}"
    job = jobs[0]
    spec = job["spec"]
    assert 1 <= spec.get("backoffLimit", 6) <= 6, "backoffLimit"
    assert isinstance(spec.get("ttlSecondsAfterFinished"), int), "ttlSecondsAfterFinished unset"
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec.get("activeDeadlineSeconds"), "a stuck migration must time out"
    assert spec.get("parallelism", 1) == 1
    assert spec.get("completions", 1) == 1
    assert spec["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert spec["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "migration"
    images = {c["image"] for c in spec["template"]["spec"]["containers"]}
    assert images == {server["image"]}, "the migration must run the server's image"


# -------------------------------------------------------------------------- dev


@pytest.mark.parametrize("service", SERVICES)
def test_dev_secrets_exist(service: str) -> None:
    docs = _docs("dev")
    refs = set()
    for workload in _workloads(docs, service):
        for c in _containers(workload["spec"]["template"]["spec"]):
            refs |= {v for v in _effective_env(c, docs).values() if isinstance(v, SecretRef)}
    # Issue 12: auth also reads its sign-in secrets, vault keys and its callers' service tokens.
    expected = {"database-url"} | (
        set(AUTH_SECRET_SETTINGS.values())
        | {"vault-keys", "service-tokens"}
        # Issue 13: the activation pages' vendor credentials.
        | {"netvisor-partner-key", "procountor-client-secret"}
        | {"visma-connect-client-secret", "twentyfour-application-id"}
        if service == "auth"
        else set()
    )
    # Issue 14: the importer fetches vendor credentials with its own service token.
    if service == "importer":
        expected |= {"service-token"}
    # Issue 15: the journal-exporter too, and the bearer tokens of its payroll routes.
    if service == "journal-exporter":
        expected |= {"service-token", "payroll-api-tokens"}
    assert {r.key for r in refs} == expected, refs
    for ref in refs:
        secret = _find(docs, "Secret", ref.name)
        assert secret is not None, f"dev overlay lacks Secret {ref.name}"
        value = _secret_value(secret, ref.key)
        assert value, f"Secret {ref.name} lacks {ref.key}"
        if ref.key == "session-secret":
            assert "dev" in value, "dev secrets must say so"
            assert len(value) >= 32, "auth refuses a session secret under 32 characters"
        if ref.key in ("vault-keys", "service-tokens", "service-token", "payroll-api-tokens"):
            assert "dev-only" in value, "dev secrets must say so"
        if ref.key != "database-url":
            continue
        url = urlsplit(value)
        assert url.scheme == "postgresql+asyncpg", value
        assert url.hostname == "postgres", value
        assert url.path == "/ledgerlink_" + service.replace("-", "_"), "one database per service"
        assert "dev" in (url.password or ""), "dev passwords must say so"


@pytest.mark.parametrize("service", SERVICES)
def test_dev_settings(service: str) -> None:
    docs = _docs("dev")
    deployment, container = _server(docs, service)
    assert deployment["spec"].get("replicas", 1) == 1
    env = _effective_env(container, docs)
    assert env[f"{_prefix(service)}LOG_LEVEL"] == "DEBUG"
    assert env[f"{_prefix(service)}KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"


# ---------------------------------------------------------------------- sandbox


def _labelled(docs: tuple[Doc, ...], service: str) -> list[Doc]:
    return [d for d in docs if _service_of(d) == service]


def test_sandbox_is_deployed_in_dev_only() -> None:
    """The vendor sandboxes are a dev/demo part: dev renders them, prod renders nothing of
    them (no object labelled sandbox, no Deployment, no image)."""
    dev = _docs("dev")
    dev_kinds = sorted(d["kind"] for d in _labelled(dev, SANDBOX))
    assert dev_kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"], dev_kinds
    deployment, container = _server(dev, SANDBOX)
    assert deployment["spec"].get("replicas", 1) == 1, "in-memory state: one replica"
    assert container["image"] == "ledgerlink/sandbox:dev", container["image"]

    prod = _docs("prod")
    leaked = [
        _doc_id("prod", d)
        for d in prod
        if _service_of(d) == SANDBOX or "sandbox" in d["metadata"]["name"]
    ]
    assert not leaked, f"prod renders sandbox objects: {leaked}"
    prod_images = [
        c["image"]
        for d in prod
        if d.get("kind") in WORKLOAD_KINDS
        for c in _containers(d["spec"]["template"]["spec"])
    ]
    assert prod_images, "prod renders no workloads at all"
    assert not [i for i in prod_images if "sandbox" in i], prod_images


def test_sandbox_settings_and_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox pod's environment parses into SandboxConfig, listens on all interfaces
    at the http port, references no Secret, and its Service reaches only its pod."""
    from ledgerlink.sandbox.config import SandboxConfig

    docs = _docs("dev")
    deployment, container = _server(docs, SANDBOX)
    assert [*container.get("command", []), *container.get("args", [])] == [
        "ledgerlink-sandbox",
        "serve",
    ]
    env = _effective_env(container, docs)
    p = _prefix(SANDBOX)
    refs = [k for k, v in env.items() if isinstance(v, SecretRef)]
    assert not refs, f"the sandbox needs no secrets, yet references {refs}"
    typos = [
        k
        for k in env
        if k.startswith(p) and _unknown_setting(SandboxConfig, k[len(p) :].split("__"))
    ]
    assert not typos, f"SandboxConfig has no such settings: {typos}"
    for key in [k for k in os.environ if k.startswith(p)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        assert isinstance(value, str)
        monkeypatch.setenv(key, value)
    config = SandboxConfig()
    all_interfaces = "0.0.0.0"  # noqa: S104 - what the pod must listen on
    assert config.host == all_interfaces, "must listen on the pod's IP"
    assert config.port == HTTP_PORT == _container_port(container, "http")
    assert config.demo_tenants is True, "dev sandboxes come with demo tenants to try"

    svc = _find(docs, "Service", f"ledgerlink-{SANDBOX}")
    assert svc is not None, "no Service ledgerlink-sandbox"
    ports = svc["spec"]["ports"]
    assert [(port["name"], port["port"]) for port in ports] == [("http", 80)], ports
    assert _container_port(container, ports[0]["targetPort"]) == HTTP_PORT
    selector = {"matchLabels": svc["spec"]["selector"]}
    for other in docs:
        if other.get("kind") in WORKLOAD_KINDS:
            pod_labels = other["spec"]["template"]["metadata"].get("labels") or {}
            routed = _selector_matches(selector, pod_labels)
            assert routed == (other is deployment), _doc_id("dev", other)


# ------------------------------------------------------------------------- prod


def test_prod_has_no_secrets() -> None:
    secrets = [_doc_id("prod", d) for d in _docs("prod") if d.get("kind") == "Secret"]
    assert not secrets, "prod Secrets are created out of band, never rendered"


@pytest.mark.parametrize(("overlay", "doc"), _doc_params(WORKLOAD_KINDS, overlays=("prod",)))
def test_prod_references_secrets_by_fixed_name(overlay: str, doc: Doc) -> None:
    service = doc["metadata"]["labels"]["app.kubernetes.io/name"]
    for c in _containers(doc["spec"]["template"]["spec"]):
        for value in _effective_env(c, _docs(overlay)).values():
            if isinstance(value, SecretRef):
                assert value.name == f"ledgerlink-{service}-secrets", value


@pytest.mark.parametrize(("overlay", "doc"), _doc_params(frozenset({"Deployment"}), ("prod",)))
def test_prod_deployment_is_highly_available(overlay: str, doc: Doc) -> None:
    replicas = doc["spec"].get("replicas", 1)
    assert replicas >= 2, f"{_doc_id(overlay, doc)} has {replicas} replica(s)"
    pod_labels = doc["spec"]["template"]["metadata"]["labels"]
    pdbs = [
        d
        for d in _docs(overlay)
        if d.get("kind") == "PodDisruptionBudget"
        and d["metadata"].get("namespace") == doc["metadata"].get("namespace")
        and _selector_matches(d["spec"]["selector"], pod_labels)
    ]
    assert len(pdbs) == 1, f"{_doc_id(overlay, doc)} is covered by {len(pdbs)} PDBs"
    pdb = pdbs[0]["spec"]
    if "maxUnavailable" in pdb:
        assert isinstance(pdb["maxUnavailable"], int), pdb
        assert pdb["maxUnavailable"] >= 1, "the PDB must allow one eviction"
    else:
        min_available = pdb.get("minAvailable")
        assert isinstance(min_available, int), pdb
        assert 1 <= min_available < replicas, "the PDB must allow one eviction"

    pod = doc["spec"]["template"]["spec"]
    spread = pod.get("topologySpreadConstraints") or []
    anti_affinity = (pod.get("affinity") or {}).get("podAntiAffinity")
    assert any(t["topologyKey"] == "kubernetes.io/hostname" for t in spread) or anti_affinity, (
        "replicas must be spread across nodes"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_prod_settings(service: str) -> None:
    docs = _docs("prod")
    _, container = _server(docs, service)
    env = _effective_env(container, docs)
    assert env.get("OTEL_TRACES_EXPORTER") == "otlp"
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert isinstance(endpoint, str), "OTEL_EXPORTER_OTLP_ENDPOINT is not set"
    assert urlsplit(endpoint).scheme in ("http", "https"), endpoint
    assert env[f"{_prefix(service)}LOG_LEVEL"] != "DEBUG"
    tag = container["image"].rsplit(":", 1)[-1]
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag) or "@sha256:" in container["image"], (
        f"prod image {container['image']} must be a release tag or digest"
    )


# ----------------------------------------------------------------------- ingress


def _generated(docs: tuple[Doc, ...], name: str) -> Doc:
    """The ConfigMap kustomize generated as ``name`` (with its content hash)."""
    found = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and re.fullmatch(name + HASH_SUFFIX, d["metadata"]["name"])
    ]
    assert len(found) == 1, name
    return found[0]


def _routed_to(ingress: Doc, path: str) -> str | None:
    """The Service an Ingress sends ``path`` to (Prefix: element-wise, longest wins)."""
    best: tuple[int, str] | None = None
    for rule in ingress["spec"]["rules"]:
        for route in rule["http"]["paths"]:
            prefix = route["path"].rstrip("/")
            assert route["pathType"] == "Prefix", route
            matches = path == prefix or path.startswith(prefix + "/")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), route["backend"]["service"]["name"])
    return best[1] if best else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_site_routes_browser_pages_and_nothing_cluster_only(overlay: str) -> None:
    docs = _docs(overlay)
    ingress = _find(docs, "Ingress", INGRESS)
    assert ingress is not None
    for path, service in BROWSER_PATHS.items():
        assert _routed_to(ingress, path) == service, path
    for path in CLUSTER_ONLY_PATHS:
        assert _routed_to(ingress, path) is None, f"{path} is reachable from outside"
    # Every backend is a Service of the overlay, on its port named http.
    for rule in ingress["spec"]["rules"]:
        for route in rule["http"]["paths"]:
            backend = route["backend"]["service"]
            assert _find(docs, "Service", backend["name"]) is not None, backend
            assert backend["port"] == {"name": "http"}, backend
    # The controller may reach auth through its NetworkPolicy.
    policy = _find(docs, "NetworkPolicy", "ledgerlink-auth-ingress")
    assert policy is not None
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in sources


def test_prod_site_has_one_https_host_that_auth_builds_its_links_on() -> None:
    docs = _docs("prod")
    ingress = _find(docs, "Ingress", INGRESS)
    assert ingress is not None
    hosts = {rule.get("host") for rule in ingress["spec"]["rules"]}
    assert len(hosts) == 1, hosts
    assert None not in hosts, hosts
    (host,) = hosts
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "ledgerlink-web-tls"}]
    config = _generated(docs, "ledgerlink-auth-config")
    assert config["data"]["LEDGERLINK_AUTH_SIGNIN__PUBLIC_URL"] == f"https://{host}"
    exporter = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap"
        and re.fullmatch(r"ledgerlink-journal-exporter-config" + HASH_SUFFIX, d["metadata"]["name"])
    )
    # Same site: the payroll pages send people to auth's sign-in by path.
    assert exporter["data"]["LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__SIGNIN__SIGNIN_URL"] == "/signin"
    assert exporter["data"]["LEDGERLINK_JOURNAL_EXPORTER_PAYROLL__PAGES_ENABLED"] == "true"
