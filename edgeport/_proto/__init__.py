"""Protobuf and grpclib code generated from proto/ (never edited)."""
