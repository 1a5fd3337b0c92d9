"""``python -m glance_tui``: the same start as the console script (quiet warnings, one-line Ctrl-C)."""

from glance_tui.entry import main

raise SystemExit(main())
