"""The back office at ``/staff``: one blueprint, its screens split by audience.

* :mod:`~donations.staff.views.auth` -- signing in and out (everyone);
* :mod:`~donations.staff.views.supporters` -- the dashboard, supporters and the
  finance actions on them;
* :mod:`~donations.staff.views.admin` -- audit log, team and settings (admins);
* :mod:`~donations.staff.views.experiments` -- A/B tests of the ask (results for
  everyone, changes for admins).
"""

from donations.staff.views import admin, auth, experiments, supporters
from donations.staff.views.blueprint import bp

__all__ = ["admin", "auth", "bp", "experiments", "supporters"]
