"""Secrets come from environment variables or files and never leave this module in clear.

Every resolved secret is registered so that :func:`redact` can scrub it from anything
written to the journal, a log, or the screen.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from glance_tui.files import KIB, FileProblem, read_text

REDACTED = "********"
SECRET_FILE_LIMIT = 64 * KIB
# A secret shorter than this is redacted only where it stands as a whole token: "pw=ab" and
# "ab@host" lose it, "about" keeps its letters (any substring of every word would be noise).
SHORT = 3

_lock = threading.Lock()
_known: set[str] = set()
_short: re.Pattern[str] | None = None
# scheme://user:password@host -> scheme://********@host (also without a password: a token alone).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s@]*(?:@[^/?#\s@]*)*)@")


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
    """Remember a secret value so it is redacted wherever it might appear, however short."""
    global _short
    if not value:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        shorts = sorted((v for v in _known if len(v) < SHORT), key=len, reverse=True)
        _short = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, shorts)) + r")(?![A-Za-z0-9])") if shorts else None


def redact(text: str) -> str:
    """Replace every registered secret, and the user:password part of any URL, in ``text``."""
    if not text:
        return text
    if "://" in text:
        text = _USERINFO.sub(lambda m: m.group("scheme") + REDACTED + "@", text)
    with _lock:
        known = sorted((v for v in _known if len(v) >= SHORT), key=len, reverse=True)
        short = _short
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    if short is not None:
        text = short.sub(REDACTED, text)
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
            value = read_text(path, SECRET_FILE_LIMIT, f"{what} file").rstrip("\r\n")
        except FileProblem as exc:
            raise ValueError(str(exc)) from None
        if not value:
            raise ValueError(f"{what} file {path} is empty")
        return Secret(value, f"file:{path}")
    raise ValueError(f"no source for the {what}: set *_env or *_file")
