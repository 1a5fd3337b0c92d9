"""Secrets come from environment variables or files and never leave this module in clear.

Every resolved secret is registered so that :func:`redact` can scrub it from anything
written to the journal, a log, or the screen.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

REDACTED = "********"

_lock = threading.Lock()
_known: set[str] = set()


class Secret:
    """A string that prints as ``********``; call :meth:`reveal` at the point of use."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def register(value: str) -> None:
    """Remember a secret value so it is redacted wherever it might appear."""
    if value and len(value) >= 3:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text``."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def read_secret(*, env: str | None, file: str | Path | None, what: str) -> Secret:
    """Read a secret from ``env`` or ``file``; raise ``ValueError`` with a one-line reason."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"environment variable {env} is not set (it should hold the {what})")
        return Secret(value, f"env:{env}")
    if file:
        path = Path(file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise ValueError(f"{what} file {path} does not exist") from None
        except PermissionError:
            raise ValueError(f"{what} file {path} is not readable (permission denied)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{what} file {path} cannot be read: {exc.__class__.__name__}") from None
        if not value:
            raise ValueError(f"{what} file {path} is empty")
        return Secret(value, f"file:{path}")
    raise ValueError(f"no source for the {what}: set *_env or *_file")
