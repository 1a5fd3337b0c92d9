"""The Textual assistant for glance-tui. Imports nothing from ``glance_tui`` but ``glance_tui.api``."""
