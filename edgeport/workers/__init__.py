"""Worker processes: every core behind the same ports, one EdgePort to the processor.

``edgeport --workers N`` (or ``WORKERS``, or ``spec.workers``) with N > 1
runs a supervisor (:mod:`edgeport.workers.supervisor`) that starts N worker
processes (``edgeport worker --index i --count N``). Each worker is a whole
edgeport bound to every configured port with SO_REUSEPORT; the kernel
spreads datagrams and connections over them. Responses find the worker that
holds their client transaction by the top Via branch (:mod:`.branch`) and
travel there over local Unix datagram sockets (:mod:`.handoff`). The
supervisor serves ``/healthz``, ``/readyz`` and ``/metrics`` for all of
them (:mod:`.metrics_merge`) and, with the built-in processor, one
registrar over gRPC on a Unix socket.
"""
