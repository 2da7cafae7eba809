"""Payments: the Stripe gateway, webhooks and (later) reconciliation."""
