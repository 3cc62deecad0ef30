"""Fuzzing edgeport's input paths: generated and mutated SIP through the parser, the
conversion to protobuf and stream framing, and STUN datagrams through the STUN
decoder, in-process (``inprocess``); then over real sockets into real ``edgeport
--workers 2`` processes with everything on (``live``: UDP, TCP, TLS, WS, WSS and
PROXY protocol listeners, HEP capture, flood limits, STUN on UDP, CRLF and
WebSocket keep-alives, WebSocket Pings by edgeport, forwarding to next hops named
in DNS, large requests over TCP, reloads on SIGHUP and the TLS file watch).

``python -m tests.fuzz --seed 1 --count 1000000`` (``nox -s fuzz``) runs it;
``tests/fuzz/test_fuzz.py`` runs a bounded slice in the normal suite.

Parts: ``mutate`` (seeds and mutations), ``sizes`` (size classes at the limits),
``proxy_headers`` (PROXY v1/v2 headers), ``stun`` (STUN datagrams and the verdict
on the answers), ``senders`` and ``wsclient`` (the fuzzer's sockets), ``verdicts``
and ``observers`` (what may reach the processor, what reaches the HEP collector),
``nexthop`` (where forwarded requests go, by IP and by DNS), ``keepalives`` (ping
bursts, quiet WebSockets), ``reloads`` (SIGHUPs while the inputs flow), ``edges``
(the processes), ``watch``, ``probes`` and ``logscan`` (is everything still alive
and well), ``reproducers`` (saved inputs replayed first), ``report``.
"""
