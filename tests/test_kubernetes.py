"""The Kubernetes manifests: every overlay renders, passes the API schemas, and agrees with
the EdgePort config it ships.

Each overlay under deploy/kubernetes is rendered with ``kubectl kustomize``
(bash .ci/run installs kubectl when missing), validated offline with
``kubernetes-validate`` against the Kubernetes API schemas, and checked for
the invariants that break a deployment silently: probes on the health port,
a grace period longer than the drain, Services exposing exactly the
listeners, the ConfigMap's config loading with edgeport's own loader.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import trustme
import yaml

from edgeport.config import EdgePortConfig, load_config_with_warnings
from edgeport.sip.transport import Transport
from tests.config_fixtures import write_leaf_pkcs12

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("base", "overlays/proxy-protocol", "overlays/stack")
# The oldest Kubernetes release the manifests aim at, and the newest schemas known.
SCHEMA_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
POD_NAME = "edgeport-7d9f8b6c5d-x2x9q"

Doc = dict[str, Any]


@functools.cache
def render(overlay: str) -> tuple[Doc, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (bash .ci/run installs it)", pytrace=False)
    completed = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return tuple(doc for doc in yaml.safe_load_all(completed.stdout) if doc)


def find(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def edgeport_container(docs: tuple[Doc, ...]) -> Doc:
    deployment = find(docs, "Deployment", "edgeport")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]]
    return container


def container_env(container: Doc) -> dict[str, str]:
    """The container's environment as the pod sees it (the downward API resolved)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = POD_NAME
    return env


def edgeport_config(docs: tuple[Doc, ...], tmp_path: Path) -> tuple[EdgePortConfig, list[str]]:
    """The ConfigMap's edgeport.yaml loaded as the pod would, with a real keystore in place."""
    deployment = find(docs, "Deployment", "edgeport")
    pod = deployment["spec"]["template"]["spec"]
    container = edgeport_container(docs)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_volume = next(v for v in volumes.values() if "configMap" in v)
    config_map = find(docs, "ConfigMap", config_volume["configMap"]["name"])
    mount = mounts[config_volume["name"]]
    text = config_map["data"][mount["subPath"]]
    assert container["args"][container["args"].index("--config") + 1] == mount["mountPath"]

    document = yaml.safe_load(text)
    security = document["spec"].get("securityContext")
    if security is not None:
        # The keystore comes from the Secret mounted where the config says.
        keystore = Path(security["keyStore"])
        secret_volume = next(v for v in volumes.values() if "secret" in v)
        assert mounts[secret_volume["name"]]["mountPath"] == str(keystore.parent)
        secret = find(docs, "Secret", secret_volume["secret"]["secretName"])
        assert keystore.name in secret["data"]
        ca = trustme.CA()
        local = write_leaf_pkcs12(
            tmp_path / keystore.name,
            security["keyStorePassword"],
            ca.issue_cert("sip.example.com"),
        )
        text = text.replace(str(keystore), str(local))
    path = tmp_path / "edgeport.yaml"
    path.write_text(text)
    return load_config_with_warnings(path, container_env(container))


def listeners(config: EdgePortConfig) -> set[tuple[str, int]]:
    return {("UDP" if t.protocol is Transport.UDP else "TCP", t.port) for t in config.transports}


def named_ports(container: Doc) -> dict[str, tuple[str, int]]:
    return {p["name"]: (p.get("protocol", "TCP"), p["containerPort"]) for p in container["ports"]}


def edgeport_services(docs: tuple[Doc, ...]) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == "Service"
        and d["spec"].get("selector", {}).get("app.kubernetes.io/name") == "edgeport"
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_resource_passes_the_kubernetes_schemas(overlay: str, version: str) -> None:
    docs = render(overlay)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_loads_with_edgeports_loader(overlay: str, tmp_path: Path) -> None:
    config, warnings = edgeport_config(render(overlay), tmp_path)
    assert warnings == []
    assert config.ref == POD_NAME  # HOSTNAME from the downward API
    assert config.health.enabled


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_health_server_on_its_port(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    config, _ = edgeport_config(docs, tmp_path)
    container = edgeport_container(docs)
    ports = named_ports(container)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports[get["port"]] == ("TCP", config.health.port)
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    annotations = find(docs, "Deployment", "edgeport")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == str(config.health.port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_outlasts_the_prestop_pause_and_the_drain(
    overlay: str, tmp_path: Path
) -> None:
    docs = render(overlay)
    config, _ = edgeport_config(docs, tmp_path)
    pod = find(docs, "Deployment", "edgeport")["spec"]["template"]["spec"]
    command = edgeport_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = float(command[1])
    assert pause > 0
    assert pod["terminationGracePeriodSeconds"] > pause + config.shutdown_timeout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_expose_exactly_the_configured_listeners(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    config, _ = edgeport_config(docs, tmp_path)
    ports = named_ports(edgeport_container(docs))
    assert set(ports.values()) == listeners(config) | {("TCP", config.health.port)}
    exposed: set[tuple[str, int]] = set()
    for service in edgeport_services(docs):
        for port in service["spec"]["ports"]:
            target = ports[port["targetPort"]]
            assert target == (port["protocol"], port["port"])
            exposed.add(target)
            if port["protocol"] == "UDP":
                # No SNAT: a UDP client's source address is the one edgeport sees.
                assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert exposed == listeners(config)


def test_the_proxy_protocol_overlay_expects_the_header_on_every_stream_listener(
    tmp_path: Path,
) -> None:
    docs = render("overlays/proxy-protocol")
    config, _ = edgeport_config(docs, tmp_path)
    assert config.proxy_protocol.trusted_proxies
    for transport in config.transports:
        assert transport.proxy_protocol is (transport.protocol is not Transport.UDP)
    udp = find(docs, "Service", "edgeport")
    stream = find(docs, "Service", "edgeport-stream")
    assert {p["protocol"] for p in udp["spec"]["ports"]} == {"UDP"}
    assert {p["protocol"] for p in stream["spec"]["ports"]} == {"TCP"}
    annotations = stream["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] == "*"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edgeport_runs_as_the_images_non_root_user(overlay: str) -> None:
    docs = render(overlay)
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert match is not None
    pod = find(docs, "Deployment", "edgeport")["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"]) == (int(match[1]), int(match[2]))
    container = edgeport_container(docs)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The keystore loader writes a temporary file: /tmp must be writable.
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert container["image"] == compose["services"]["edgeport"]["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_and_autoscaler_point_at_the_deployment(overlay: str) -> None:
    docs = render(overlay)
    labels = find(docs, "Deployment", "edgeport")["spec"]["template"]["metadata"]["labels"]
    budget = find(docs, "PodDisruptionBudget", "edgeport")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    autoscaler = find(docs, "HorizontalPodAutoscaler", "edgeport")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "edgeport",
    }
    assert autoscaler["spec"]["minReplicas"] >= 2
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_the_stack_matches_what_compose_runs(tmp_path: Path) -> None:
    docs = render("overlays/stack")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert images == {name: compose[name]["image"] for name in images}
    assert set(images) == set(compose)

    def service_port(name: str) -> int:
        (port,) = find(docs, "Service", name)["spec"]["ports"]
        return int(port["port"])

    config, _ = edgeport_config(docs, tmp_path)
    host, port = config.processor.addr.rsplit(":", 1)
    assert service_port(host) == int(port)
    env = container_env(edgeport_container(docs))
    assert env["NATS_PUBLISHER_ENABLED"] == "true"
    assert config.publishers.nats_enabled
    nats_host, nats_port = config.publishers.nats_url.removeprefix("nats://").split(":")
    assert service_port(nats_host) == int(nats_port)

    edgeport_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and "edgeport.yaml" in d["data"]
    )
    assert yaml.safe_load(edgeport_map["data"]["edgeport.yaml"]) == yaml.safe_load(
        (ROOT / "deploy" / "edgeport.yaml").read_text()
    )
    assert config.security_context is None  # starts without a keystore, as compose does

    dispatcher_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and "dispatcher.yaml" in d["data"]
    )
    dispatcher = yaml.safe_load(dispatcher_map["data"]["dispatcher.yaml"])
    assert dispatcher == yaml.safe_load((ROOT / "deploy" / "dispatcher.yaml").read_text())
    (route,) = dispatcher["spec"]["processors"]
    route_host, route_port = route["addr"].split(":")
    assert service_port(route_host) == int(route_port)
    bind_port = dispatcher["spec"]["bindAddr"].rsplit(":", 1)[1]
    assert service_port("dispatcher") == int(bind_port)
    processor = find(docs, "Deployment", "processor")["spec"]["template"]["spec"]
    args = processor["containers"][0]["args"]
    assert args[:2] == ["builtin-processor", "--bind"]
    assert args[2].endswith(f":{route_port}")


def test_the_proxy_protocol_config_is_the_base_config_plus_the_header() -> None:
    base = yaml.safe_load((KUSTOMIZE / "base" / "edgeport.yaml").read_text())
    overlay = yaml.safe_load(
        (KUSTOMIZE / "overlays" / "proxy-protocol" / "edgeport.yaml").read_text()
    )
    del overlay["spec"]["proxyProtocol"]
    for entry in overlay["spec"]["transport"]:
        entry.pop("proxyProtocol", None)
    assert overlay == base
