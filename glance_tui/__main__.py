"""``python -m glance_tui``: Ctrl-C while the CLI is still importing is one line too, not a traceback."""

import sys

try:
    from glance_tui.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
