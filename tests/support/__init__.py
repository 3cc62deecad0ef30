"""Reusable test parts: a scriptable gRPC processor."""
