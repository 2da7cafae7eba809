"""Extension objects, created unbound and initialised by the app factory."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect

from donations.db import db

migrate = Migrate()
csrf = CSRFProtect()
babel = Babel()
talisman = Talisman()
# The client address comes from ProxyFix (TRUSTED_PROXIES), so a spoofed
# X-Forwarded-For is only believed from the configured number of proxies.
limiter = Limiter(key_func=get_remote_address, default_limits=[])

__all__ = ["babel", "csrf", "db", "limiter", "migrate", "talisman"]
