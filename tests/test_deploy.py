"""The container files and the configs they mount stay loadable and consistent.

No Docker engine runs here, so compose.yaml is checked by structure (CI also
runs `docker compose config`), and the EdgePort configs it and the image
use are loaded by edgeport's own loader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from edgeport.config import ConfigError, load_config_with_warnings
from edgeport.sip.transport import Transport

ROOT = Path(__file__).resolve().parent.parent
ENV = {"LOCALNETS": "10.0.0.0/8"}


@pytest.mark.parametrize(
    "path", ["deploy/edgeport.yaml", "examples/edgeport.minimal.yaml", "examples/edgeport.json"]
)
def test_shipped_configs_load_without_warnings(path: str) -> None:
    config, warnings = load_config_with_warnings(ROOT / path, ENV)
    assert warnings == []
    assert config.transports


def test_full_example_fails_only_on_its_keystore() -> None:
    # examples/edgeport.yaml names a keystore under /etc/routr/certs that
    # exists only in a real deployment.
    with pytest.raises(ConfigError) as caught:
        load_config_with_warnings(ROOT / "examples/edgeport.yaml", ENV)
    assert caught.value.problems
    assert all("keyStore" in line or "trustStore" in line for line in caught.value.problems)


def test_compose_services_have_health_checks_and_consistent_wiring() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"edgeport", "dispatcher", "processor", "nats"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"

    edge_env = services["edgeport"]["environment"]
    assert edge_env["NATS_PUBLISHER_URL"] == "nats://nats:4222"
    assert edge_env["ENABLE_HEALTHCHECKS"] == "true"
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["edgeport"]["volumes"]}
    edge_config_path = ROOT / mounted[edge_env["CONFIG_PATH"]]
    config, _ = load_config_with_warnings(edge_config_path, ENV)
    assert config.processor.addr == "dispatcher:51901"
    published = {p.split(":")[1] for p in services["edgeport"]["ports"]}
    for transport in config.transports:
        suffix = "/udp" if transport.protocol is Transport.UDP else "/tcp"
        assert f"{transport.port}{suffix}" in published

    dispatcher = yaml.safe_load((ROOT / "deploy/dispatcher.yaml").read_text())
    assert dispatcher["kind"] == "MessageDispatcher"
    assert dispatcher["spec"]["bindAddr"] == "0.0.0.0:51901"
    (route,) = dispatcher["spec"]["processors"]
    assert route["matchFunc"] == "req => true"
    assert route["addr"] == "processor:51904"
    assert "--bind" in services["processor"]["entrypoint"]
    assert "0.0.0.0:51904" in services["processor"]["entrypoint"]
    assert set(config.methods) <= set(route["methods"])


def test_dockerfile_runs_as_non_root_with_the_routr_config_path() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # A numeric user, so that Kubernetes' runAsNonRoot can check it.
    assert "useradd --system --uid 10001 --gid edgeport" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "CONFIG_PATH=/etc/routr/edgeport.yaml" in dockerfile
    assert "EXPOSE 5060/udp 5060/tcp" in dockerfile
    assert dockerfile.splitlines()[-1].startswith("ENTRYPOINT")


def test_dockerfile_health_check_probes_a_server_the_image_turns_on() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile
    assert "http://127.0.0.1:8080/healthz" in dockerfile
    # Without the health server, the image's own check would mark it unhealthy.
    assert "ENABLE_HEALTHCHECKS=true" in dockerfile


def test_the_image_builds_the_compiled_codec_and_runs_it_without_a_compiler() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    build, runtime = stages
    assert build.startswith("python:3.11 AS build")  # gcc and the Python headers
    assert runtime.startswith("python:3.11-slim")  # neither
    assert "ARG EDGEPORT_COMPILE=1" in dockerfile.split("FROM ")[0]
    # What the in-tree build backend and setup.py need beside the package.
    assert "COPY pyproject.toml setup.py README.md ./" in build
    assert "COPY build_support ./build_support" in build
    assert 'EDGEPORT_COMPILE="$EDGEPORT_COMPILE" pip wheel' in build
    # The image refuses to build when the codec it runs is not the compiled one.
    assert 'edgeport --version | grep -q "(codec: compiled)"' in runtime
