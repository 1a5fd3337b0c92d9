"""Secrets come from environment variables or files and never leave this module in clear.

Every resolved secret is registered so that :func:`redact` can scrub it from anything
written to the journal, a log, or the screen. The rule that neither leaks nor reveals: a
secret shorter than :data:`MIN_LENGTH` characters is refused at load (redacting ``3`` inside
``glance-3`` would both mangle output and tell the reader the password), so every secret that
is in use is long enough to be replaced wherever it occurs, as a plain substring.
"""

from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path
from typing import Any

from glance_tui.files import KIB, FileProblem, read_text

REDACTED = "********"
SECRET_FILE_LIMIT = 64 * KIB
MIN_LENGTH = 8  # shorter secrets are refused at load (see the module's docstring)

_lock = threading.Lock()
_known: set[str] = set()
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
    """Remember a secret value so it is redacted wherever it appears (a substring included).

    Values shorter than :data:`MIN_LENGTH` never reach here from a config (:func:`read_secret`
    refuses them); one registered by code is still redacted, as a substring.
    """
    if not value:
        return
    with _lock:
        _known.add(value)


def redact(text: str) -> str:
    """Replace every registered secret, and the user:password part of any URL, in ``text``."""
    if not text:
        return text
    if "://" in text:
        text = _USERINFO.sub(lambda m: m.group("scheme") + REDACTED + "@", text)
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside ``value`` (dicts, lists and tuples walked), before it is
    serialised as JSON; a NaN or infinity becomes None (not JSON: "unknown", as a reader would have to say)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


class SecretProblem(ValueError):
    """A secret that cannot be used: ``str()`` is what is wrong, ``fix`` how to fix it; neither holds the value."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.fix = fix


def env_value(env: str, what: str, key: str) -> str:
    """The value of environment variable ``env`` named by config key ``key``; :class:`SecretProblem` if unset or empty.

    The name is never repeated in the message: a password typed into ``key`` by mistake
    would otherwise be printed.
    """
    value = os.environ.get(env)
    if value is None:
        raise SecretProblem(f"the environment variable named by {key} is not set (it should hold the {what}; the name is not shown)",
                            f"export the variable {key} names before starting glance-tui, or correct {key}")
    if not value:
        raise SecretProblem(f"the environment variable named by {key} is set but empty (it should hold the {what})",
                            f"put the {what} in that variable, or correct {key}")
    try:
        value.encode("utf-8")  # bytes that are not UTF-8 arrive as surrogates: no server or file could be sent them
    except UnicodeEncodeError as exc:
        raise SecretProblem(f"the environment variable named by {key} is not UTF-8 text (at character {exc.start + 1} of the {what})",
                            f"set it from UTF-8 text (check the terminal's or script's encoding), or correct {key}") from None
    return value


def read_secret(*, env: str | None, file: str | Path | None, what: str, key: str = "password") -> Secret:
    """Read a secret from ``env`` or ``file`` (``key``: the config key prefix, e.g. ``database.password``).

    Raises :class:`SecretProblem` (one line, with its fix) that never holds the value, nor
    the variable's name (see :func:`env_value`).
    """
    env_key, file_key = _source_key(key, "env"), _source_key(key, "file")
    if env:
        value = env_value(env, what, env_key)
        _long_enough(value, what, f"the environment variable named by {env_key}")
        return Secret(value, f"env:{env}")
    if file:
        path = Path(file).expanduser()
        try:
            value = read_text(path, SECRET_FILE_LIMIT, f"{what} file").rstrip("\r\n")
        except FileProblem as exc:
            raise SecretProblem(str(exc), f"correct {file_key} or the file's permissions") from None
        if not value:
            raise SecretProblem(f"{what} file {path} is empty", f"write the {what} into {path}, or correct {file_key}")
        _long_enough(value, what, f"{what} file {path}")
        return Secret(value, f"file:{path}")
    raise SecretProblem(f"no source for the {what}", f"set {env_key} or {file_key}")


def _source_key(key: str, source: str) -> str:
    """``database.password`` → ``database.password_file``; a flag ``--stats-password`` → ``--stats-password-file``."""
    return f"{key}-{source}" if key.startswith("--") else f"{key}_{source}"


def _long_enough(value: str, what: str, source: str) -> None:
    if len(value) < MIN_LENGTH:
        raise SecretProblem(f"the {what} in {source} is shorter than {MIN_LENGTH} characters "
                            "(so short a secret cannot be hidden in output without revealing it)",
                            f"use a {what} of at least {MIN_LENGTH} characters (set it on the server first)")
