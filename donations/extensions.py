"""Extension objects, created unbound and initialised by the app factory."""

from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, current_app, request
from flask.globals import request_ctx
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

from donations.db import db
from donations.headers import Talisman


class _CSRFProtect(CSRFProtect):  # type: ignore[misc]
    """Flask-WTF, asking the method first.

    Its before-request check looks up the view's exemption (two lookups and
    a name built from the view) before it asks whether the method needs a
    token at all; a GET, HEAD or OPTIONS never does, so that comes first.
    """

    def protect(self, apply_exemptions: bool = False) -> None:
        if request.method in current_app.config["WTF_CSRF_METHODS"]:
            super().protect(apply_exemptions=apply_exemptions)


migrate = Migrate()
csrf = _CSRFProtect()
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

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        # Its after-request and teardown hooks build the request's limiter
        # context even when no limit was looked at; only a request that
        # checked a limit (and so made the context) has headers to add or
        # state to release.
        for hooks in (app.after_request_funcs[None], app.teardown_request_funcs[None]):
            hooks[:] = [_when_limited(hook) if self._owns(hook) else hook for hook in hooks]

    def _owns(self, hook: Callable[..., Any]) -> bool:
        if isinstance(hook, partial):
            return hook.args == (self,)
        return getattr(hook, "__self__", None) is self


def _when_limited(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        if hasattr(request_ctx, "_limiter_request_context"):
            return hook(value)
        return value

    return run


limiter = _Limiter(key_func=get_remote_address, default_limits=[])

__all__ = ["babel", "csrf", "db", "limiter", "migrate", "talisman"]
