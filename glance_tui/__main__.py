from glance_tui.cli import main

raise SystemExit(main())
