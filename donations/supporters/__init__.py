"""Supporters and their donations: the ledger."""
