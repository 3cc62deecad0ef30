"""Copies of SIP traffic for outside tools: HEP v3 to Homer (see ``sender``)."""
