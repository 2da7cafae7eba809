"""Donations: reader donations and memberships for independent newsrooms."""

from donations.app import create_app

__all__ = ["create_app"]
