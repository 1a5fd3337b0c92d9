"""The ways Glance's API runs on a node, each with the patterns that recognise its processes
and the rule that says which of its processes run Glance's code (and so date it).

A name is not enough: under uWSGI every process is ``uwsgi``, under Apache every process is
``apache2``/``httpd``. The patterns read a process's whole command line instead. Containers
come next (their processes are recognised the same way; the image, not a file, dates them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from glance_tui.node.readings import Proc

# argv[0] is the program, possibly run by the interpreter of its #! line (``python3 -u /usr/bin/glance-api``).
_PYTHON = r"(?:\S*/)?(?:python[\d.]*|pypy[\d.]*|sh|bash|dash)(?:\s+-\S+)*\s+"


def program(name: str) -> str:
    """A pattern for a process whose program is ``name`` (a script, or a binary of that name)."""
    return rf"^(?:{_PYTHON})?(?:\S*/)?{re.escape(name)}(?:\s|$)"


@dataclass(frozen=True)
class Runtime:
    """One way of running glance-api: how its processes are recognised, which run the code."""

    name: str
    patterns: tuple[str, ...]
    # True: every process of a served tree runs Glance's code (a uWSGI master and its workers, an
    # eventlet parent and its forks). False: only the processes the patterns match do.
    code_in_every_process: bool = True

    def recognises(self, proc: Proc) -> bool:
        return any(re.search(p, proc.args) for p in self.patterns)


EVENTLET = Runtime("eventlet", (program("glance-api"),))
# uWSGI (master and every worker: all named uwsgi, all with the master's argv) serving Glance's
# ini (glance-api-uwsgi.ini), the WSGI module (glance.wsgi.api) or the old glance-wsgi-api script.
UWSGI = Runtime(
    "uwsgi",
    (rf"^(?:{_PYTHON})?(?:\S*/)?uwsgi[\w.-]*\s(?:.*[\s=:])?(?:\S*glance\S*\.ini|glance\.wsgi\.api\S*|\S*glance-wsgi-api)(?:\s|$)",),
)
# Apache mod_wsgi daemon mode (``WSGIDaemonProcess glance-api display-name=%{GROUP}``): only the
# daemon processes run Glance; Apache's own parent and workers keep running across a graceful reload.
MOD_WSGI = Runtime("mod_wsgi", (r"^\(wsgi:glance[^)\s]*\)",), code_in_every_process=False)

RUNTIMES: tuple[Runtime, ...] = (EVENTLET, UWSGI, MOD_WSGI)


def default_patterns(services: Sequence[str]) -> list[str]:
    """Every runtime's patterns, plus one per service the operator lists (its program name)."""
    patterns = [p for rt in RUNTIMES for p in rt.patterns]
    patterns += [program(s) for s in services if program(s) not in patterns]
    return patterns


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """Compiled patterns; ``ValueError`` naming the first that is not a regular expression."""
    compiled = []
    for text in patterns:
        try:
            compiled.append(re.compile(text))
        except re.error as exc:
            raise ValueError(f"{text!r} is not a regular expression ({exc})") from None
    return compiled


def runtime_of(proc: Proc) -> Runtime | None:
    return next((rt for rt in RUNTIMES if rt.recognises(proc)), None)


def code_runners(tree: Sequence[Proc]) -> list[Proc]:
    """The processes of a served tree whose starts date the code it serves: all of them, unless
    a runtime there runs its code only in some (mod_wsgi's daemons under Apache's own processes)."""
    partial = [rt for rt in RUNTIMES if not rt.code_in_every_process and any(rt.recognises(p) for p in tree)]
    if not partial:
        return list(tree)
    return [p for p in tree if runtime_of(p) is not None]
