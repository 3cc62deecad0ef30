"""Scanner drop: User-Agent substrings found in the raw header bytes, before parsing."""

from __future__ import annotations

import pytest

from edgeport.config.model import DEFAULT_SCANNERS
from edgeport.protection.scanners import ScannerFilter
from tests.support.ua import sip

SVMAP_OPTIONS = sip(
    """OPTIONS sip:100@198.51.100.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-1234;rport
Max-Forwards: 70
To: "sipvicious"<sip:100@1.1.1.1>
From: "sipvicious"<sip:100@1.1.1.1>;tag=6236343461
User-Agent: friendly-scanner
Call-ID: 1234567890
Contact: sip:100@203.0.113.5:5060
CSeq: 1 OPTIONS
Accept: application/sdp
Content-Length: 0

"""
)

LEGIT_REGISTER = sip(
    """REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK-77
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:alice@example.com>
Call-ID: reg-1@192.0.2.4
CSeq: 1 REGISTER
Contact: <sip:alice@192.0.2.4:5060>
User-Agent: Linphone/5.2 (belle-sip/5.2)
Content-Length: 0

"""
)


def with_user_agent(line: str, body: str = "") -> bytes:
    return sip(
        f"""OPTIONS sip:edge@198.51.100.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-9
From: <sip:a@203.0.113.5>;tag=1
To: <sip:edge@198.51.100.1>
Call-ID: ua-test
CSeq: 1 OPTIONS
{line}
Content-Type: text/plain
Content-Length: {len(body.encode())}

{body}"""
    )


def test_sipvicious_options_matches_and_a_softphone_does_not() -> None:
    scanners = ScannerFilter(DEFAULT_SCANNERS)
    assert scanners.matches(SVMAP_OPTIONS)
    assert not scanners.matches(LEGIT_REGISTER)


@pytest.mark.parametrize(
    "line",
    [
        "User-Agent: friendly-scanner",
        "user-agent: Friendly-Scanner",
        "USER-AGENT:FRIENDLY-SCANNER",
        "User-Agent  \t: sipcli/v1.8",
        "User-Agent: SIPVicious 0.3.4",
        "User-Agent: pplsip",
        "User-Agent: VaxSIPUserAgent/3.1",
        "User-Agent: Mozilla/5.0\r\n  (sundayddr)",  # folded onto a continuation line
    ],
)
def test_header_name_and_value_forms_match(line: str) -> None:
    assert ScannerFilter(DEFAULT_SCANNERS).matches(with_user_agent(line))


@pytest.mark.parametrize(
    "line",
    [
        "User-Agent: sipsak 0.9.8",  # a monitoring tool, not in the default list
        "User-Agent: SIPp/3.7",
        "Server: friendly-scanner",  # not the request's agent
        "X-User-Agent: friendly-scanner",  # another header whose name ends alike
        "Subject: friendly-scanner",
    ],
)
def test_other_headers_and_legit_tools_do_not_match(line: str) -> None:
    assert not ScannerFilter(DEFAULT_SCANNERS).matches(with_user_agent(line))


def test_the_body_is_not_searched() -> None:
    data = with_user_agent("User-Agent: Zoiper", body="User-Agent: friendly-scanner\r\n")
    assert not ScannerFilter(DEFAULT_SCANNERS).matches(data)


def test_bare_lf_line_ends_and_a_second_user_agent_line() -> None:
    data = with_user_agent("User-Agent: Zoiper\r\nUser-Agent: iWar").replace(b"\r\n", b"\n")
    assert ScannerFilter(DEFAULT_SCANNERS).matches(data)


def test_configured_list_replaces_the_default_and_empty_turns_it_off() -> None:
    custom = ScannerFilter(["sipsak"])
    assert custom.matches(with_user_agent("User-Agent: sipsak 0.9.8"))
    assert not custom.matches(SVMAP_OPTIONS)
    off = ScannerFilter([])
    assert not off.enabled
    assert not off.matches(SVMAP_OPTIONS)


def test_regex_characters_in_a_pattern_are_literal() -> None:
    scanners = ScannerFilter(["bad.agent (x)"])
    assert scanners.matches(with_user_agent("User-Agent: Bad.Agent (X) 1.0"))
    assert not scanners.matches(with_user_agent("User-Agent: badXagent (x)"))


def test_invalid_utf8_and_binary_do_not_break_the_match() -> None:
    data = with_user_agent("User-Agent: \xff\xfe friendly-scanner").replace(
        b"\xc3\xbf\xc3\xbe", b"\xff\xfe"
    )
    assert ScannerFilter(DEFAULT_SCANNERS).matches(data)
    assert not ScannerFilter(DEFAULT_SCANNERS).matches(b"\x00\xff" * 500)
