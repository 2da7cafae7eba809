"""The back office's staff fixtures, for the erasure requests staff decide."""

from tests.staff.conftest import make_staff, signed_in  # noqa: F401
