"""The back office's blueprint, shared by its screens (one module per audience)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from donations.staff.auth import has_role
from donations.staff.models import Role

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"has_role": has_role, "Role": Role}
