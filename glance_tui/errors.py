"""Errors an operator sees as one line: what went wrong, where, and how to fix it."""

from __future__ import annotations


class GlanceTuiError(Exception):
    """Base class: ``str(err)`` is a complete, traceback-free message for the operator."""

    exit_code = 1

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text += f" — fix: {self.fix}"
        return text


class ConfigError(GlanceTuiError):
    """The configuration file is missing, unreadable or invalid (exit code 2)."""

    exit_code = 2


class UsageError(GlanceTuiError):
    """The command line is wrong (exit code 2)."""

    exit_code = 2


class AdapterError(GlanceTuiError):
    """A remote system (LB, SSH, database) refused or failed a request."""


class HostKeyError(AdapterError):
    """An SSH host key is unknown or changed: never accepted silently."""


class CommandTimeout(AdapterError):
    """A remote command exceeded its timeout and was ended."""
