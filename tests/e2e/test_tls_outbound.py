"""Outbound TLS: edgeport calls a TLS callee with the trust and identity it is configured with.

The callee is a small TLS server on 127.0.0.1 that speaks literal SIP. Its
certificate comes from a private CA (the "callee CA", in edgeport's
trustStore); it requires a client certificate (CERT_REQUIRED) and trusts
only the CA that signed edgeport's keyStore (the "edge CA"). A UDP caller
calls ``sip:bob@127.0.0.1:<port>;transport=tls`` through edgeport and a
processor that routes like the built-in one.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeport.config import SecurityContext, TransportConfig
from edgeport.keystore import load_keystore
from edgeport.sip.transport import Transport
from tests.config_fixtures import ca_certificate, write_leaf_pkcs12, write_pem, write_pkcs12
from tests.e2e.conftest import start_routed_edge
from tests.e2e.flows import response_to
from tests.support.ua import Received, TcpUA, UdpUA, sip

KEYSTORE_PASSWORD = "changeit"


@dataclass
class TlsCallee:
    """Accepts one TLS connection, requiring a client certificate from ``client_ca``."""

    context: ssl.SSLContext
    port: int = 0  # bound by serve
    server_names: list[str | None] = field(default_factory=list)  # SNI, one per handshake
    client_certificate: bytes | None = None  # DER, as presented by edgeport
    handshake_error: BaseException | None = None
    connected: trio.Event = field(default_factory=trio.Event)
    ua: TcpUA | None = None

    @classmethod
    def make(cls, leaf: trustme.LeafCert, client_ca: trustme.CA) -> TlsCallee:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(context)
        context.verify_mode = ssl.CERT_REQUIRED
        client_ca.configure_trust(context)
        callee = cls(context)

        def sni(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            callee.server_names.append(name)

        context.sni_callback = sni
        return callee

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        (tcp,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = int(tcp.socket.getsockname()[1])
        async with trio.SSLListener(tcp, self.context) as listener:
            task_status.started()
            stream = await listener.accept()
            async with stream:
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    self.handshake_error = exc.__cause__ or exc
                    self.connected.set()
                    return
                self.client_certificate = stream.getpeercert(binary_form=True)
                self.ua = TcpUA(stream)  # type: ignore[arg-type]  # any trio stream frames alike
                self.connected.set()
                await trio.sleep_forever()

    async def receive(self) -> Received:
        await self.connected.wait()
        assert self.ua is not None, f"no TLS connection: {self.handshake_error!r}"
        return await self.ua.receive()

    async def send(self, data: bytes) -> None:
        assert self.ua is not None
        await self.ua.send(data)


def security_context(
    tmp_path: Path, edge_ca: trustme.CA, trusted: trustme.CA | None, store_type: str = "pkcs12"
) -> SecurityContext:
    """edgeport's keystore (a certificate for 127.0.0.1 from ``edge_ca``) and,
    when given, a trust store holding ``trusted``; both of ``store_type``."""
    leaf = edge_ca.issue_cert("127.0.0.1")
    if store_type == "pkcs12":
        keystore = write_leaf_pkcs12(tmp_path / "edge.p12", KEYSTORE_PASSWORD, leaf)
    else:
        keystore = write_pem(tmp_path / "edge.pem", leaf, KEYSTORE_PASSWORD)
    trust_store = None
    if trusted is not None and store_type == "pkcs12":
        trust_store = write_pkcs12(
            tmp_path / "trust.p12",
            KEYSTORE_PASSWORD,
            key=None,
            cert=None,
            cas=[ca_certificate(trusted)],
        )
    elif trusted is not None:
        trust_store = tmp_path / "trust.pem"
        trusted.cert_pem.write_to_path(str(trust_store))
    return SecurityContext(
        key_store=str(keystore),
        key_store_password=KEYSTORE_PASSWORD,
        key_store_type=store_type,
        trust_store=None if trust_store is None else str(trust_store),
        trust_store_password=KEYSTORE_PASSWORD if trust_store is not None else "",
    )


def edge_certificate(context: SecurityContext) -> bytes:
    """The DER of the certificate in edgeport's keystore, as it should reach the callee."""
    chain = load_keystore(context.key_store, KEYSTORE_PASSWORD, context.key_store_type)
    leaf = x509.load_pem_x509_certificates(chain.cert_chain_pem)[0]
    return leaf.public_bytes(serialization.Encoding.DER)


def invite(caller: UdpUA, target: str, call_id: str) -> bytes:
    return sip(
        f"""INVITE {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-{call_id};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: <{target}>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{caller.port}>
Content-Length: 0

"""
    )


def transports() -> tuple[TransportConfig, ...]:
    return (
        TransportConfig(Transport.UDP, 0, "127.0.0.1"),
        TransportConfig(Transport.TLS, 0, "127.0.0.1"),
    )


@pytest.mark.parametrize("store_type", ["pkcs12", "pem"])
async def test_outbound_tls_uses_the_trust_store_and_presents_the_keystore(
    nursery: trio.Nursery, tmp_path: Path, store_type: str
) -> None:
    edge_ca, callee_ca = trustme.CA(), trustme.CA()
    callee = TlsCallee.make(callee_ca.issue_cert("127.0.0.1"), client_ca=edge_ca)
    await nursery.start(callee.serve)
    tls = security_context(tmp_path, edge_ca, trusted=callee_ca, store_type=store_type)
    edge = await start_routed_edge(nursery, transports=transports(), security_context=tls)
    caller = edge.caller
    target = f"sip:bob@127.0.0.1:{callee.port};transport=tls"
    with trio.fail_after(20):
        await caller.send(invite(caller, target, "tls-out-1"))
        incoming = await callee.receive()
        assert incoming.method == "INVITE", incoming.first_line
        assert incoming.header("Call-ID") == "tls-out-1"
        assert "SIP/2.0/TLS" in incoming.header("Via")
        contact = f"Contact: <sip:bob@127.0.0.1:{callee.port};transport=tls>\n"
        await callee.send(response_to(incoming, "200 OK", to_tag="bob-1", extra=contact))
        ok = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert ok.status == 200, ok.first_line

        # The ACK for the 2xx goes end to end, over the same TLS connection.
        routes = "".join(f"Route: {r}\n" for r in reversed(ok.headers("Record-Route")))
        await caller.send(
            sip(
                f"""ACK sip:bob@127.0.0.1:{callee.port};transport=tls SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-tls-out-1-ack;rport
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-tls-out-1
To: {ok.header("To")}
Call-ID: tls-out-1
CSeq: 1 ACK
Content-Length: 0

"""
            )
        )
        ack = await callee.receive()
        assert ack.method == "ACK", ack.first_line

    # edgeport presented the certificate of its keyStore, as the callee asked.
    assert callee.client_certificate == edge_certificate(tls)
    # An IP next hop: verified against the certificate's IP address; no SNI is sent.
    assert callee.server_names == [None]


@pytest.mark.parametrize(
    ("callee_name", "trust_callee_ca", "reason"),
    [
        ("127.0.0.1", False, "unable to get local issuer certificate"),
        ("callee.example.test", True, "IP address mismatch"),
    ],
    ids=["no trustStore", "certificate without the IP address"],
)
async def test_outbound_tls_to_an_unverified_callee_fails_with_503_and_one_log_line(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    callee_name: str,
    trust_callee_ca: bool,
    reason: str,
) -> None:
    edge_ca, callee_ca = trustme.CA(), trustme.CA()
    leaf = callee_ca.issue_cert(callee_name)
    sans = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).extensions
    ip_sans = sans.get_extension_for_class(x509.SubjectAlternativeName).value
    assert bool(ip_sans.get_values_for_type(x509.IPAddress)) == (callee_name == "127.0.0.1")
    callee = TlsCallee.make(leaf, client_ca=edge_ca)
    await nursery.start(callee.serve)
    trusted = callee_ca if trust_callee_ca else None
    edge = await start_routed_edge(
        nursery,
        transports=transports(),
        security_context=security_context(tmp_path, edge_ca, trusted=trusted),
    )
    caller = edge.caller
    target = f"sip:bob@127.0.0.1:{callee.port};transport=tls"
    with caplog.at_level(logging.INFO, logger="edgeport"), trio.fail_after(20):
        await caller.send(invite(caller, target, "tls-out-2"))
        final = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
        await callee.connected.wait()
    assert final.status == 503, final.first_line
    assert callee.ua is None  # the callee never got a verified connection
    # One warning names the failure (the transaction layer adds an INFO line
    # about the send that could not happen); no traceback.
    named = [r for r in caplog.records if "certificate verify failed" in r.getMessage()]
    assert all(record.exc_info is None for record in named)
    lines = [r.getMessage() for r in named if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert f"tls:127.0.0.1:{callee.port}" in lines[0]
    assert reason in lines[0]
