"""Fuzzing edgeport's input paths: generated and mutated SIP through the parser, the
conversion to protobuf, stream framing, and real sockets into a running edgeport.

``python -m tests.fuzz --seed 1 --count 1000000`` (``nox -s fuzz``) runs it;
``tests/fuzz/test_fuzz.py`` runs a bounded slice in the normal suite.
"""
