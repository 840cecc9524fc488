"""Dramatiq side: broker, per-message app context, actors, embedded Redis, supervisor."""
