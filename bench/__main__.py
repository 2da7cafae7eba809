"""`make bench` / `python -m bench [--quick] [--profile [N]]`: see bench/README.md."""

from bench.support_page import main

raise SystemExit(main())
