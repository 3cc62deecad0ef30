"""Protobuf and grpcio code generated from proto/ (never edited)."""
