"""Extension objects, created unbound and initialised by the app factory."""

from flask import current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

from donations.db import db
from donations.headers import Talisman

migrate = Migrate()
csrf = CSRFProtect()
babel = Babel()
talisman = Talisman()


# The client address comes from ProxyFix (TRUSTED_PROXIES), so a spoofed
# X-Forwarded-For is only believed from the configured number of proxies.
class _Limiter(Limiter):
    """Flask-Limiter, with nothing to do before a view that has no limit.

    Every limit here is a ``@limiter.limit`` decorator on its view (no default,
    application, meta or blueprint limits), and the decorator checks its own
    limits when the view runs. So the before-request check only has work for
    decorated views; working that out inside Flask-Limiter (meta limits,
    exemption scopes) costs more than a public page itself.
    """

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        if in_middleware and callable_name is None:
            view = current_app.view_functions.get(request.endpoint or "")
            if view is None or getattr(view, "__wrapper-limiter-instance", None) is not self:
                return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)


limiter = _Limiter(key_func=get_remote_address, default_limits=[])

__all__ = ["babel", "csrf", "db", "limiter", "migrate", "talisman"]
