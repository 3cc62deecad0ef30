"""The committed protobuf code matches proto/, and field numbers hit the wire as specified."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgeport._proto import common_pb2, processor_pb2, sipmessage_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a dev dependency")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_proto
    finally:
        sys.path.remove(str(ROOT / "tools"))
    gen_proto.generate(tmp_path)
    committed = ROOT / "edgeport" / "_proto"
    fresh = {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file()}
    current = {p.name: p.read_text() for p in committed.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(current), "run `nox -s proto` and commit edgeport/_proto"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert not stale, f"stale generated files {stale}: run `nox -s proto`"


def test_message_request_wire_bytes() -> None:
    # ref=1 (string): tag 0x0a; edge_port_ref=2: 0x12; method=3 (varint): 0x18.
    request = processor_pb2.MessageRequest(
        ref="ab", edge_port_ref="e", method=processor_pb2.Method.INVITE
    )
    assert request.SerializeToString() == b"\x0a\x02ab\x12\x01e\x18\x02"


def test_sender_and_listening_points_field_numbers() -> None:
    iface = processor_pb2.NetInterface(host="h", port=5060, transport=common_pb2.Transport.TCP)
    # host=1 string 0x0a; port=2 varint 0x10, 5060 = 0xc4 0x27; transport=3 varint 0x18.
    assert iface.SerializeToString() == b"\x0a\x01h\x10\xc4\x27\x18\x01"
    request = processor_pb2.MessageRequest(sender=iface, listening_points=[iface])
    encoded = iface.SerializeToString()
    # sender=4 (length-delimited) 0x22; listening_points=5 0x2a.
    assert request.SerializeToString() == (
        b"\x22" + bytes([len(encoded)]) + encoded + b"\x2a" + bytes([len(encoded)]) + encoded
    )


def test_metadata_map_and_message_field_numbers() -> None:
    request = processor_pb2.MessageRequest(metadata={"k": "v"})
    # map field 9: entry tag 0x4a; entry key=1 0x0a, value=2 0x12.
    assert request.SerializeToString() == b"\x4a\x06\x0a\x01k\x12\x01v"
    msg = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.OK)
    # response_type=1 varint 0x08, OK=7.
    assert msg.SerializeToString() == b"\x08\x07"
    wrapped = processor_pb2.MessageRequest(message=msg)
    # message=8 0x42.
    assert wrapped.SerializeToString() == b"\x42\x02\x08\x07"


def test_sip_message_typed_field_numbers() -> None:
    msg = sipmessage_pb2.SIPMessage(
        call_id=sipmessage_pb2.CallID(call_id="c"),
        reason_phrase="R",
        body="b",
        via=[sipmessage_pb2.Via(host="h", port=-1, r_port_flag=True)],
    )
    data = msg.SerializeToString()
    # call_id=6 0x32 {call_id=1 0x0a}; via=13 0x6a; reason_phrase=16 0x82 0x01; body=17 0x8a 0x01.
    assert b"\x32\x03\x0a\x01c" in data
    assert data.endswith(b"\x82\x01\x01R\x8a\x01\x01b")
    via = sipmessage_pb2.Via(host="h", port=-1, r_port_flag=True).SerializeToString()
    # port=-1 is a 10-byte varint; r_port_flag=5 0x28.
    assert via == b"\x0a\x01h\x10" + b"\xff" * 9 + b"\x01" + b"\x28\x01"
    assert b"\x6a" + bytes([len(via)]) + via in data


def test_enum_values_match_the_contract() -> None:
    rt = sipmessage_pb2.ResponseType
    assert (rt.OK, rt.BAD_REQUEST, rt.REQUEST_TERMINATED, rt.SESSION_NOT_ACCEPTABLE) == (
        7,
        16,
        40,
        57,
    )
    m = processor_pb2.Method
    assert (m.REGISTER, m.ACK, m.OPTIONS, m.UPDATE) == (1, 7, 10, 14)
    t = common_pb2.Transport
    assert (t.UDP, t.SCTP, t.WSS) == (0, 3, 5)


def test_service_path() -> None:
    from edgeport._proto import processor_pb2_grpc

    source = Path(processor_pb2_grpc.__file__).read_text()
    assert "/fonoster.routr.processor.v2beta1.Processor/ProcessMessage" in source
    assert hasattr(processor_pb2_grpc, "ProcessorStub")
    assert hasattr(processor_pb2_grpc, "add_ProcessorServicer_to_server")
