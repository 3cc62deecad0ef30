"""Tests of the built-in processor."""
