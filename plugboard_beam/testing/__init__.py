"""Helpers for tests and benchmarks (the Pub/Sub emulator)."""
