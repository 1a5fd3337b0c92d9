"""Operator command templates: parsed and rendered by hand, never through ``str.format``.

Python's format syntax would let a template reach attributes, indexes, format specs and
conversions of the values (``{node.upper}``, ``{node[0]}``, ``{node:.3}``, ``{node!r}``) and
apply them *after* shell quoting. Here a placeholder is exactly ``{name}`` for one of
:data:`PLACEHOLDERS`, literal braces are ``{{`` and ``}}``, and anything else is refused when
the config loads, naming the key. A leaf module: the config model and the command builder
both import it, so the model can validate its own templates.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from glance_tui.errors import InvalidValue

PLACEHOLDERS = ("node", "target_release", "target_version", "services", "port")

_KNOWN = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(InvalidValue):
    """A template that cannot be rendered; ``fix`` says how to write it."""


def _placeholder(inner: str) -> str:
    if inner in PLACEHOLDERS:
        return inner
    if not inner.strip():
        raise TemplateError("empty placeholder {}", f"name the value, one of {_KNOWN}; write a literal brace as {{{{ or }}}}")
    head = re.split(r"[.\[:!]", inner, maxsplit=1)[0]
    if head in PLACEHOLDERS:
        raise TemplateError(
            f"placeholder {{{_printable(inner)}}} uses format syntax",
            f"write plain {{{head}}}: attributes, indexes, format specs and conversions are not supported",
        )
    if head.isdigit() or inner.isdigit():
        raise TemplateError(f"positional placeholder {{{_printable(inner)}}}", f"name the value, one of {_KNOWN}")
    return _unknown(inner)


def _unknown(inner: str) -> str:
    raise TemplateError(f"unknown placeholder {{{_printable(inner)}}}", f"use only {_KNOWN}; write a literal brace as {{{{ or }}}}")


def _printable(text: str, limit: int = 40) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pieces(template: str) -> list[tuple[str, str]]:
    """The template as ("text", literal) and ("value", name) pieces; :class:`TemplateError` if malformed."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            pieces.append(("text", template[pos:match.start()]))
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(("text", token[0]))
        elif token in ("{", "}"):
            raise TemplateError(f"unmatched {token!r} at character {match.start() + 1}", "write a literal brace as {{ or }}")
        else:
            pieces.append(("value", _placeholder(match.group(1))))
        pos = match.end()
    if pos < len(template):
        pieces.append(("text", template[pos:]))
    return pieces


def check_template(template: str) -> None:
    """Raise :class:`TemplateError` unless ``template`` uses only plain documented placeholders."""
    _pieces(template)


def _quoted(value: str | Sequence[str] | None) -> str:
    if value is None:
        return shlex.quote("")
    if isinstance(value, str):
        return shlex.quote(value)
    return " ".join(shlex.quote(str(v)) for v in value)  # {services}: each name quoted on its own


def render(template: str, values: Mapping[str, str | Sequence[str] | None]) -> str:
    """The template with every placeholder replaced by its shell-quoted value."""
    out: list[str] = []
    for kind, text in _pieces(template):
        if kind == "text":
            out.append(text)
        elif text in values:
            out.append(_quoted(values[text]))
        else:
            raise TemplateError(f"placeholder {{{text}}} has no value here", f"use only {_KNOWN}")
    return "".join(out)
