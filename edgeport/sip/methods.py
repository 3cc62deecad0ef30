"""The SIP methods edgeport knows by name: those of the Method enum of Routr's
processor.proto (contract §1), each defined by an RFC (3261, 3262, 3311,
3428, 3515, 3903, 6086, 6665)."""

from __future__ import annotations

from typing import Final

SIP_METHODS: Final = (
    "REGISTER",
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "MESSAGE",
    "INFO",
    "NOTIFY",
    "SUBSCRIBE",
    "PRACK",
    "UPDATE",
    "REFER",
    "PUBLISH",
)
