"""TLS: the server context from a PKCS#12 keystore, client authentication, outbound TLS."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trustme
from cryptography import x509
from transport_helpers import point, receive_until_eof, running_layer, sip_request

from edgeport.config import ClientAuthType, SecurityContext
from edgeport.sip.transport import Transport
from edgeport.transports import Peer, SendError
from edgeport.transports.tls import build_client_context, build_server_context, version_range

SecurityContextFactory = Callable[[ClientAuthType], SecurityContext]
ClientContextFactory = Callable[[bool], ssl.SSLContext]


async def open_tls(
    address: tuple[str, int], context: ssl.SSLContext
) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream(*address)
    return trio.SSLStream(tcp, context, server_hostname="127.0.0.1")


async def refused_exchange(stream: trio.SSLStream[trio.SocketStream]) -> bytes:
    """What a client the server refused receives: nothing, then an error or the end.

    TLS 1.3 may finish the client's side of the handshake; the server's
    refusal then arrives on the first read, as an error (BrokenResourceError)
    or, with the ssl module of Python 3.11.2 (Debian 12's python3), as the
    end of the stream.
    """
    try:
        await stream.send_all(sip_request(call_id="anonymous"))
        return await receive_until_eof(stream)
    except trio.BrokenResourceError:
        return b""


async def test_tls_round_trip_without_client_certificate(
    security_context: SecurityContextFactory, client_context: ClientContextFactory
) -> None:
    server_context = build_server_context(security_context(ClientAuthType.DISABLED))
    assert server_context.verify_mode == ssl.CERT_NONE
    with trio.fail_after(5):
        async with running_layer([Transport.TLS], tls=server_context) as (layer, recorder):
            client = await open_tls(point(layer, Transport.TLS), client_context(False))
            async with client:
                await client.send_all(sip_request("REGISTER"))
                message = await recorder.next()
                assert message.data == sip_request("REGISTER")
                assert message.peer.transport is Transport.TLS
                await layer.send(message.peer, b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                assert await client.receive_some(65536) == (
                    b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
                )


async def test_required_client_certificate(
    security_context: SecurityContextFactory, client_context: ClientContextFactory
) -> None:
    server_context = build_server_context(security_context(ClientAuthType.REQUIRED))
    assert server_context.verify_mode == ssl.CERT_REQUIRED
    with trio.fail_after(5):
        async with running_layer([Transport.TLS], tls=server_context) as (layer, recorder):
            address = point(layer, Transport.TLS)
            # the certified client connects first and stays connected
            good = await open_tls(address, client_context(True))
            await good.send_all(sip_request(call_id="good-1"))
            assert (await recorder.next()).data == sip_request(call_id="good-1")

            anonymous = await open_tls(address, client_context(False))
            # Refused: no answer, the handshake counted as failed, and the
            # anonymous message delivered nowhere (good-2 comes next).
            assert await refused_exchange(anonymous) == b""
            await trio.aclose_forcefully(anonymous)
            while layer.stats["tls_handshake_failed"] == 0:
                await trio.sleep(0.01)

            await good.send_all(sip_request(call_id="good-2"))
            assert (await recorder.next()).data == sip_request(call_id="good-2")
            assert recorder.pending() == 0
            await good.aclose()


async def test_wanted_client_certificate_is_optional(
    security_context: SecurityContextFactory,
) -> None:
    context = build_server_context(security_context(ClientAuthType.WANTED))
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_protocol_range_never_goes_below_tls_1_2() -> None:
    assert version_range(("TLSv1", "TLSv1.2")) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    assert version_range(("TLSv1.3",)) == (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
    assert version_range(("TLSv1.1",)) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    with pytest.raises(ValueError, match="SSLv3"):
        version_range(("SSLv3",))


async def test_outbound_tls_verifies_the_server(
    ca: object,
    security_context: SecurityContextFactory,
) -> None:
    sc = security_context(ClientAuthType.DISABLED)
    next_hop_context = build_server_context(sc)
    received: list[bytes] = []
    got = trio.Event()

    async def next_hop(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            received.append(bytes(await stream.receive_some(65536)))
            got.set()
        except trio.BrokenResourceError:
            pass

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_ssl_over_tcp, next_hop, 0, next_hop_context, host="127.0.0.1")
            )
            port = listeners[0].transport_listener.socket.getsockname()[1]
            target = Peer(Transport.TLS, "127.0.0.1", port)

            trusting = build_client_context(sc)  # the trust store holds the CA
            async with running_layer([Transport.TCP], tls_client_context=trusting) as (layer, _):
                await layer.send(target, sip_request())
                await got.wait()
                assert received == [sip_request()]

            untrusting = build_client_context(None)  # system CAs only
            async with running_layer([Transport.TCP], tls_client_context=untrusting) as (
                layer,
                _,
            ):
                with pytest.raises(SendError):
                    await layer.send(target, sip_request())
                assert layer.stats["connect_failed_tls"] == 1
            nursery.cancel_scope.cancel()


def _subjects(context: ssl.SSLContext) -> list[str]:
    """The common names of the CA certificates the context trusts (loaded from files)."""
    names = []
    for cert in context.get_ca_certs():
        for rdn in cert["subject"]:
            names.extend(value for key, value in rdn if key == "organizationalUnitName")
    return names


@pytest.mark.parametrize("use_system", [True, False])
def test_outbound_trust_is_the_trust_store_and_the_system_cas_unless_told_otherwise(
    ca: trustme.CA,
    security_context: SecurityContextFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    use_system: bool,
) -> None:
    # OpenSSL reads the system trust store from SSL_CERT_FILE when it is set:
    # here a CA of its own, so that the test sees exactly what is loaded.
    system_ca = trustme.CA(organization_unit_name="system CA")
    system_file = tmp_path / "system.pem"
    system_ca.cert_pem.write_to_path(str(system_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(system_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    sc = dataclasses.replace(
        security_context(ClientAuthType.DISABLED), client_use_system_trust_store=use_system
    )
    context = build_client_context(sc)
    expected = [ca_ou(ca)] + (["system CA"] if use_system else [])
    assert sorted(_subjects(context)) == sorted(expected)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def ca_ou(ca: trustme.CA) -> str:
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    (attribute,) = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(attribute.value)


def test_outbound_tls_version_range_comes_from_client_protocols(
    security_context: SecurityContextFactory,
) -> None:
    sc = dataclasses.replace(
        security_context(ClientAuthType.DISABLED), client_protocols=("TLSv1.3",)
    )
    context = build_client_context(sc)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert build_client_context(None).minimum_version == ssl.TLSVersion.TLSv1_2
