"""The committed protobuf code matches proto/, and field numbers hit the wire as specified."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from edgeport._proto import common_pb2, processor_pb2, sipmessage_pb2

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "edgeport" / "_proto"


def _gen_proto() -> ModuleType:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a dev dependency")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_proto
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return gen_proto


def _stale(fresh_dir: Path) -> list[str]:
    """Files that differ between ``fresh_dir`` and the committed edgeport/_proto."""
    fresh = {p.name: p.read_text() for p in fresh_dir.iterdir() if p.is_file()}
    current = {p.name: p.read_text() for p in COMMITTED.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(current), "run `nox -s proto` and commit edgeport/_proto"
    return sorted(name for name in fresh if fresh[name] != current[name])


def committed_generator_version() -> str:
    """The grpcio-tools version that generated the committed stubs (they record it)."""
    text = (COMMITTED / "processor_pb2_grpc.py").read_text()
    match = re.search(r"^GRPC_GENERATED_VERSION = '([0-9][0-9.]*)'$", text, re.MULTILINE)
    assert match, "processor_pb2_grpc.py names no GRPC_GENERATED_VERSION"
    return match.group(1)


def test_generated_code_is_current(tmp_path: Path) -> None:
    gen_proto = _gen_proto()
    expected = committed_generator_version()
    installed = importlib.metadata.version("grpcio-tools")
    # The generator writes its version into the stubs: another one can only
    # report them stale. Say so, rather than blame the .proto files.
    assert installed == expected, (
        f"grpcio-tools {installed} is installed, but edgeport/_proto was generated with "
        f"grpcio-tools {expected}: run the suite with grpcio-tools=={expected} "
        "(`nox -s tests` installs it), or move the pin in noxfile.py and pyproject.toml "
        "and run `nox -s proto`"
    )
    gen_proto.generate(tmp_path)
    stale = _stale(tmp_path)
    assert not stale, f"stale generated files {stale}: run `nox -s proto`"


def test_the_currency_check_notices_a_proto_changed_without_regenerating(
    tmp_path: Path,
) -> None:
    gen_proto = _gen_proto()
    protos = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", protos)
    source = protos / "processor.proto"
    text = source.read_text()
    assert "  fonoster.routr.common.v2beta1.Transport transport = 3;\n}" in text
    source.write_text(
        text.replace(
            "  fonoster.routr.common.v2beta1.Transport transport = 3;\n}",
            "  fonoster.routr.common.v2beta1.Transport transport = 3;\n  string zone = 4;\n}",
            1,
        )
    )
    out = tmp_path / "out"
    gen_proto.generate(out, proto_dir=protos)
    assert "processor_pb2.py" in _stale(out)


def test_the_generator_is_pinned_to_the_version_that_wrote_the_stubs() -> None:
    # A range let a fresh clone install a newer grpcio-tools, whose stubs
    # differ in their recorded version: the currency check then failed.
    pin = f"grpcio-tools=={committed_generator_version()}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = pyproject["project"]["optional-dependencies"]["dev"]
    assert [r for r in dev if r.startswith("grpcio-tools")] == [pin]
    noxfile = ast.parse((ROOT / "noxfile.py").read_text())
    constants = {
        target.id: node.value.value
        for node in noxfile.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert constants.get("GRPCIO_TOOLS") == pin
    sessions = {
        node.name: ast.unparse(node) for node in noxfile.body if isinstance(node, ast.FunctionDef)
    }
    for name in ("tests", "proto"):
        assert "GRPCIO_TOOLS" in sessions[name], f"nox session {name} does not install the pin"
    assert "grpcio-tools>" not in (ROOT / "noxfile.py").read_text()


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
