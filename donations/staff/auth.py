"""Who is signed in to the back office, and what they may do.

Any view -- in this blueprint or another, such as reports -- is guarded with::

    from donations.staff.auth import require_role
    from donations.staff.models import Role

    @bp.get("/staff/reports/<name>.csv")
    @require_role(Role.FINANCE)
    def export(name): ...

Anonymous visitors are redirected to the login page (for every method);
signed-in staff below the role get 403. ``g.staff`` is then the
:class:`StaffUser`; responses are marked ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, after_this_request, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from donations.db import commit, db
from donations.staff.models import Role, StaffSession, StaffUser
from donations.staff.services import STAFF_ENVIRON_KEY, resume_session

# The cookie-session key holding the server-side session's token.
SESSION_KEY = "staff_token"
# Password accepted, second factor still to come: the token of a
# StaffLoginChallenge (single use, a few minutes, this browser only).
PENDING_KEY = "staff_pending"
SESSION_ENVIRON_KEY = "donations.staff_session"

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def current_session() -> StaffSession | None:
    """The live server-side session of this request (loaded once)."""
    # Cached on the request, not on g: an app context (and its g) can
    # outlive one request, e.g. in tests or CLI-driven test clients.
    environ = request.environ
    if SESSION_ENVIRON_KEY not in environ:
        token = session.get(SESSION_KEY)
        row = resume_session(token) if isinstance(token, str) else None
        if db.session.dirty or db.session.new or (row is None and isinstance(token, str)):
            # A touched last_seen_at, or a session that ended here (timed out,
            # deactivated) with its audit entry -- already flushed, so not
            # "dirty" any more: durable now, whatever the view does next.
            commit()
        if row is None and token is not None:
            session.pop(SESSION_KEY, None)
        environ[SESSION_ENVIRON_KEY] = row
        environ[STAFF_ENVIRON_KEY] = row.staff if row is not None else None
    g.staff = environ[STAFF_ENVIRON_KEY]
    return cast("StaffSession | None", environ[SESSION_ENVIRON_KEY])


def current_staff() -> StaffUser | None:
    row = current_session()
    return row.staff if row is not None else None


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def require_role(role: Role) -> Callable[[F], F]:
    """Allow the view to staff whose role includes ``role`` (viewer < finance < admin)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            staff = current_staff()
            if staff is None:
                target = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for("staff.login", next=target))
            if not staff.role.includes(role):
                abort(403)
            after_this_request(_no_store)
            return view(*args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return cast(F, wrapped)

    return decorator


require_staff = require_role(Role.VIEWER)


def has_role(role: Role) -> bool:
    """For templates: may the signed-in staff member do what ``role`` may?"""
    staff = current_staff()
    return staff is not None and staff.role.includes(role)
