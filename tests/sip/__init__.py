"""Tests of the sans-IO SIP core (edgeport/sip/)."""
