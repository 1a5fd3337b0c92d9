"""glance-tui: the engine behind a zero-downtime rolling upgrade of Glance.

This package must import without Textual; the UI lives in ``screens``.
"""

__version__ = "0.1.0"
