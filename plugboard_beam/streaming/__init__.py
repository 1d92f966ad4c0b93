"""Streaming: Pub/Sub in and out, one model instance per key, loops through a feedback topic."""
