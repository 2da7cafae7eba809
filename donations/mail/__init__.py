"""Outgoing mail: a durable outbox, templates and transports."""
