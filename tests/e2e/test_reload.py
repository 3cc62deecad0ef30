"""Reloading a running edgeport: real processes, real clients, nothing dropped.

Each case runs ``python -m edgeport`` (one process, and a supervisor with two
workers) in front of a real gRPC processor in this test, with UDP, TLS and
WSS listeners on 127.0.0.1 and a trustme keystore, and reloads it the ways
an operator does: ``edgeport reload`` (the pid file), SIGHUP, and a
Kubernetes-style symlink swap of the keystore that the file watch notices.
``/healthz`` tells when every process runs the new generation.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import trio
import trio_websocket
import trustme
from cryptography import x509

from edgeport._proto import sipmessage_pb2
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from tests.config_fixtures import write_leaf_pkcs12
from tests.e2e.flows import ack_and_hang_up, invite, response_to
from tests.e2e.flows import register as udp_register
from tests.support.edgeport_process import edgeport_env, open_edgeport
from tests.support.grpc_processor import ScriptableProcessor, answer, start_processor
from tests.support.http_get import http_get
from tests.support.kubernetes_secret import FILE_NAME, update_secret
from tests.support.ports import free_port, stop_process
from tests.support.ua import Received, UdpUA, sip

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from edgeport._proto.processor_pb2 import MessageRequest
    from tests.support.grpc_processor import RunningProcessor

pytestmark = pytest.mark.slow

START_TIMEOUT = 30.0  # seconds for edgeport (and its workers) to answer /healthz
RELOAD_TIMEOUT = 15.0  # seconds for every process to run a new generation
HOLD_MAX = 20.0  # seconds a held processor reply waits at most for the test
PASSWORD = "changeit"
OTHER_HOST = "127.0.0.2"  # a second loopback source, for the access list
WORKERS = pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])


@dataclass
class Edge:
    """A running edgeport process (a supervisor, with workers) and what it was given."""

    process: trio.Process
    workers: int
    config: Path
    pid_file: Path
    log: Path
    udp: int
    tls: int
    wss: int
    health: int

    async def get(self, path: str) -> tuple[int, str]:
        return await http_get(self.health, path)

    async def generations(self) -> list[int | None]:
        """The configuration generation of each process serving SIP."""
        status, body = await self.get("/healthz")
        if status != 200:
            return []
        document = json.loads(body)
        if self.workers == 1:
            return [document.get("configGeneration")]
        return [entry["configGeneration"] for entry in document["workers"].values()]

    async def wait_generation(self, generation: int) -> None:
        with trio.fail_after(RELOAD_TIMEOUT):
            while await self.generations() != [generation] * self.workers:
                assert self.process.poll() is None, self.log.read_text()
                await trio.sleep(0.05)

    async def metric(self, family: str, label: str) -> list[float]:
        """Every sample of ``family`` whose labels contain ``label`` (one per worker)."""
        _, text = await self.get("/metrics")
        pattern = re.compile(rf"^{family}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
        return [float(value) for labels, value in pattern.findall(text) if label in labels]

    def hang_up(self) -> None:
        """SIGHUP to the process we started (the supervisor passes it on)."""
        self.process.send_signal(signal.SIGHUP)


class Certificates:
    """A trustme CA and the keystore edgeport serves, rewritten by :meth:`issue`."""

    def __init__(self) -> None:
        self.ca = trustme.CA()

    def issue(self, path: Path, days: int) -> x509.Certificate:
        leaf = self.ca.issue_cert(
            "127.0.0.1",
            not_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days),
        )
        write_leaf_pkcs12(path, PASSWORD, leaf)
        return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def config_text(
    edge_ports: tuple[int, int, int],
    keystore: Path,
    processor: str,
    *,
    deny: tuple[str, ...] = (),
    watch_interval: float = 0,
) -> str:
    udp, tls, wss = edge_ports
    denied = "".join(f"\n      - {network}" for network in deny)
    access = f"\n  accessControl:\n    deny:{denied}" if deny else ""
    return f"""kind: EdgePort
apiVersion: v2beta1
ref: edgeport-reload-test
spec:
  bindAddr: 127.0.0.1
  transport:
    - protocol: udp
      port: {udp}
    - protocol: tls
      port: {tls}
    - protocol: wss
      port: {wss}
  methods: [REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE]
  processor:
    addr: {processor}
    timeout: 10
  securityContext:
    keyStore: {keystore}
    keyStorePassword: {PASSWORD}
  reload:
    watchInterval: {watch_interval}{access}
"""


@asynccontextmanager
async def run_edgeport(
    tmp_path: Path, workers: int, text: str, ports: tuple[int, int, int]
) -> AsyncIterator[Edge]:
    config = tmp_path / "edgeport.yaml"
    config.write_text(text)
    health = free_port()
    env = edgeport_env(
        LOCALNETS="127.0.0.0/8", ENABLE_HEALTHCHECKS="true", HEALTHCHECK_PORT=str(health)
    )
    log = tmp_path / "edgeport.log"
    pid_file = tmp_path / "edgeport.pid"
    process = await open_edgeport(
        config, log, env, "--workers", str(workers), "--pid-file", str(pid_file)
    )
    edge = Edge(process, workers, config, pid_file, log, *ports, health)
    try:
        with trio.fail_after(START_TIMEOUT):
            while await edge.generations() != [1] * workers:
                assert process.poll() is None, log.read_text()
                await trio.sleep(0.05)
        yield edge
    finally:
        await stop_process(process)


def free_ports() -> tuple[int, int, int]:
    return free_port(), free_port(), free_port()


@dataclass
class Setup:
    """What an edgeport under test is given: a CA, the keystore it issued, three ports."""

    certificates: Certificates
    keystore: Path
    ports: tuple[int, int, int]

    def config(self, processor: str, *, deny: tuple[str, ...] = ()) -> str:
        """:func:`config_text` for these ports and this keystore."""
        return config_text(self.ports, self.keystore, processor, deny=deny)

    def run(
        self, tmp_path: Path, workers: int, processor: str
    ) -> AbstractAsyncContextManager[Edge]:
        return run_edgeport(tmp_path, workers, self.config(processor), self.ports)


def setup(tmp_path: Path) -> tuple[Setup, x509.Certificate]:
    """A fresh CA and keystore ``edge.p12`` (valid 30 days): the setup and its certificate."""
    certificates = Certificates()
    keystore = tmp_path / "edge.p12"
    first = certificates.issue(keystore, days=30)
    return Setup(certificates, keystore, free_ports()), first


def routing_processor() -> ScriptableProcessor:
    return ScriptableProcessor(reply=Router(Registrar(time.monotonic)).process)


def register(transport: str, port: int, user: str, n: int) -> bytes:
    host = "127.0.0.1" if transport == "TLS" else f"{user}.invalid"
    return sip(
        f"""REGISTER sips:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK-reload-{user}-{n};rport
Max-Forwards: 70
From: <sips:{user}@127.0.0.1>;tag=r{user}
To: <sips:{user}@127.0.0.1>
Call-ID: reload-register-{user}@test
CSeq: {n} REGISTER
Contact: <sips:{user}@{host}:{port};transport={transport.lower()}>
Expires: 60
Content-Length: 0

"""
    )


async def tls_answer(stream: trio.SSLStream[trio.SocketStream]) -> Received:
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
    return Received(data)


def serial_of(stream: trio.SSLStream[trio.SocketStream]) -> int:
    der = stream.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def served_serial(port: int, context: ssl.SSLContext) -> int:
    """The serial of the certificate a new connection to ``port`` is served."""
    stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context)
    async with stream:
        await stream.do_handshake()
        return serial_of(stream)


@WORKERS
async def test_tls_and_wss_clients_keep_their_connections_across_a_certificate_rotation(
    nursery: trio.Nursery, tmp_path: Path, workers: int
) -> None:
    processor = await start_processor(nursery, routing_processor())
    given, first = setup(tmp_path)
    context = given.certificates.client_context()
    async with given.run(tmp_path, workers, processor.addr) as edge:
        tls = await trio.open_ssl_over_tcp_stream("127.0.0.1", edge.tls, ssl_context=context)
        local_port = tls.transport_stream.socket.getsockname()[1]
        await tls.send_all(register("TLS", local_port, "alice", 1))
        assert (await tls_answer(tls)).status == 200
        assert serial_of(tls) == first.serial_number
        async with trio_websocket.open_websocket(
            "127.0.0.1", edge.wss, "/", use_ssl=context, subprotocols=["sip"]
        ) as wss:
            await wss.send_message(register("WSS", 0, "bob", 1).decode())
            assert Received((await wss.get_message()).encode()).status == 200

            second = given.certificates.issue(given.keystore, days=90)
            assert second.serial_number != first.serial_number
            reload = await trio.run_process(
                [sys.executable, "-m", "edgeport", "reload", "--pid-file", str(edge.pid_file)],
                capture_stdout=True,
                env={**os.environ, "PYTHONPATH": os.getcwd()},
            )
            assert b"sent SIGHUP to edgeport" in reload.stdout
            await edge.wait_generation(2)

            # The connections opened before go on, over the session they made.
            await tls.send_all(register("TLS", local_port, "alice", 2))
            assert (await tls_answer(tls)).status == 200
            await wss.send_message(register("WSS", 0, "bob", 2).decode())
            assert Received((await wss.get_message()).encode()).status == 200
            assert serial_of(tls) == first.serial_number
        await tls.aclose()

        # New connections are served the new certificate, on both listeners.
        assert await served_serial(edge.tls, context) == second.serial_number
        assert await served_serial(edge.wss, context) == second.serial_number
        expiry = second.not_valid_after_utc.timestamp()
        for listener in (f"tls:127.0.0.1:{edge.tls}", f"wss:127.0.0.1:{edge.wss}"):
            samples = await edge.metric(
                "edgeport_tls_certificate_expiry_seconds", f'listener="{listener}"'
            )
            assert samples == [expiry] * workers
        assert (
            await edge.metric("edgeport_config_reloads_total", 'result="applied"')
            == [1.0] * workers
        )
        log = edge.log.read_text()
        assert f"serial {second.serial_number:x}" in log
        assert f"(was serial {first.serial_number:x}" in log


@WORKERS
async def test_a_source_added_to_deny_is_refused_while_another_clients_dialog_goes_on(
    nursery: trio.Nursery, tmp_path: Path, workers: int
) -> None:
    processor = await start_processor(nursery, routing_processor())
    given, _ = setup(tmp_path)
    async with given.run(tmp_path, workers, processor.addr) as edge:
        server = ("127.0.0.1", edge.udp)
        alice, bob = await UdpUA.open(server), await UdpUA.open(server)
        other_sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await other_sock.bind((OTHER_HOST, 0))
        other = UdpUA(other_sock, server)
        await bob.send(udp_register("bob", bob.port, call_id="deny-reg-bob"))
        assert (await bob.receive()).status == 200
        await other.send(udp_register("carol", other.port, call_id="deny-reg-carol-1"))
        assert (await other.receive()).status == 200  # served before the reload

        call_id = "deny-dialog"
        await alice.send(invite(alice, call_id=call_id))
        incoming = await bob.receive_until(lambda m: m.method == "INVITE")
        await bob.send(
            response_to(
                incoming,
                "200 OK",
                to_tag="bob-1",
                extra=f"Contact: <sip:bob@127.0.0.1:{bob.port}>\n",
            )
        )
        ok = await alice.receive_until(lambda m: m.status == 200)

        edge.config.write_text(given.config(processor.addr, deny=(f"{OTHER_HOST}/32",)))
        edge.hang_up()
        await edge.wait_generation(2)

        await other.send(udp_register("carol", other.port, call_id="deny-reg-carol-2"))
        await other.nothing_within(1.0)
        await ack_and_hang_up(alice, bob, ok, call_id=call_id)
        denied = await edge.metric("edgeport_dropped_messages_total", 'reason="denied"')
        assert sum(denied) >= 1
        for ua in (alice, bob, other):
            ua.close()


@WORKERS
async def test_an_invalid_file_on_reload_leaves_edgeport_serving_the_old_configuration(
    nursery: trio.Nursery, tmp_path: Path, workers: int
) -> None:
    processor = await start_processor(nursery, routing_processor())
    given, _ = setup(tmp_path)
    async with given.run(tmp_path, workers, processor.addr) as edge:
        edge.config.write_text(given.config(processor.addr).replace("timeout: 10", "timeout: -1"))
        edge.hang_up()
        with trio.fail_after(RELOAD_TIMEOUT):
            while (
                await edge.metric("edgeport_config_reloads_total", 'result="failed"')
                != [1.0] * workers
            ):
                await trio.sleep(0.05)
        assert await edge.generations() == [1] * workers
        ua = await UdpUA.open(("127.0.0.1", edge.udp))
        await ua.send(udp_register("dave", ua.port, call_id="invalid-reload-reg"))
        assert (await ua.receive()).status == 200
        ua.close()
        log = edge.log.read_text()
        problem = "spec.processor.timeout: expected a positive number of seconds, got -1"
        assert log.count(f"ERROR edgeport.reload.reloader {problem}") == workers
        if workers > 1:
            assert "worker 0: reload failed, generation 1 keeps running" in log
            assert "worker 1: reload failed, generation 1 keeps running" in log


@WORKERS
async def test_a_new_processor_address_takes_new_calls_while_a_held_call_completes_on_the_old(
    nursery: trio.Nursery, tmp_path: Path, workers: int
) -> None:
    released = threading.Event()
    held: list[str] = []

    def hold(request: MessageRequest) -> float:
        held.append(request.ref)
        released.wait(HOLD_MAX)
        return 0.0

    old = ScriptableProcessor(reply=answer(sipmessage_pb2.OK), delay=hold)
    new = ScriptableProcessor(reply=answer(sipmessage_pb2.ACCEPTED))
    running_old: RunningProcessor = await start_processor(nursery, old)
    running_new: RunningProcessor = await start_processor(nursery, new)
    given, _ = setup(tmp_path)
    async with given.run(tmp_path, workers, running_old.addr) as edge:
        server = ("127.0.0.1", edge.udp)
        first, second = await UdpUA.open(server), await UdpUA.open(server)
        try:
            await first.send(message(first.port, "held-on-old"))
            with trio.fail_after(5):
                while not held:
                    await trio.sleep(0.01)
            edge.config.write_text(given.config(running_new.addr))
            edge.hang_up()
            await edge.wait_generation(2)

            await second.send(message(second.port, "after-reload"))
            answered = await second.receive_until(
                lambda m: m.status is not None and m.status >= 200
            )
            assert answered.status == 202  # the new processor's answer
            released.set()
            completed = await first.receive_until(
                lambda m: m.status is not None and m.status >= 200
            )
            assert completed.status == 200  # the old processor's, after the reload
            assert [r.ref for r in old.requests] == ["held-on-old"]
            assert [r.ref for r in new.requests] == ["after-reload"]
            with trio.fail_after(5):
                while f"the channel to 127.0.0.1:{running_old.port} is closed" not in (
                    edge.log.read_text()
                ):
                    await trio.sleep(0.05)
        finally:
            released.set()
            first.close()
            second.close()


def message(port: int, call_id: str) -> bytes:
    return sip(
        f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-msg-{call_id};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: 5

hello"""
    )


def kubernetes_secret(root: Path, version: str, certificates: Certificates) -> x509.Certificate:
    """The keystore as a Secret volume, updated to a new certificate as the kubelet does."""
    return update_secret(
        root, version, lambda path: certificates.issue(path, days=30 + len(version))
    )


@WORKERS
async def test_a_kubernetes_secret_update_of_the_keystore_reloads_by_itself(
    nursery: trio.Nursery, tmp_path: Path, workers: int
) -> None:
    processor = await start_processor(nursery, routing_processor())
    certificates = Certificates()
    secret = tmp_path / "secret"
    secret.mkdir()
    first = kubernetes_secret(secret, "2026_12_01", certificates)
    keystore = secret / FILE_NAME
    ports = free_ports()
    text = config_text(ports, keystore, processor.addr, watch_interval=0.2)
    context = certificates.client_context()
    async with run_edgeport(tmp_path, workers, text, ports) as edge:
        assert await served_serial(edge.tls, context) == first.serial_number
        second = kubernetes_secret(secret, "2026_12_07", certificates)
        await edge.wait_generation(2)
        assert await served_serial(edge.tls, context) == second.serial_number
        assert await served_serial(edge.wss, context) == second.serial_number
        assert "changed on disk" in edge.log.read_text()
