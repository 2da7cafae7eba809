"""`make bench` / `python -m bench [--quick] [--profile [N]]`: see bench/README.md."""

import sys

if sys.argv[1:2] == ["webhooks"]:
    # `python -m bench webhooks [--quick]`: see bench/webhooks.py.
    from bench.webhooks import main as webhooks_main

    raise SystemExit(webhooks_main(sys.argv[2:]))

if sys.argv[1:2] == ["reminders"]:
    # `python -m bench reminders [--count N]`: see bench/reminders.py.
    from bench.reminders import main as reminders_main

    raise SystemExit(reminders_main(sys.argv[2:]))

if sys.argv[1:2] == ["exports"]:
    # `python -m bench exports [--rows N] [--xlsx-rows N]`: see bench/exports.py.
    from bench.exports import main as exports_main

    raise SystemExit(exports_main(sys.argv[2:]))

from bench.support_page import main

raise SystemExit(main())
