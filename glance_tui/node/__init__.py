"""What runs on a node — the one owner of that truth.

``readings`` parses what the node prints (processes, listening sockets, install time);
``runtimes`` knows each way Glance runs (eventlet, uWSGI, Apache mod_wsgi): how its processes
are recognised and which of them date the code; ``verdict`` turns the readings into one verdict
(running / stopped / unknown, which code, why); ``probe`` reads a node; ``starts`` is the run's
own record of what it started. Plan, gates and context only ask; this package never imports them.
"""

from glance_tui.node.facts import CODE_INSTALLED, CODE_MIXED, CODE_OLD, NodeFacts
from glance_tui.node.probe import glance_processes, probe_node
from glance_tui.node.starts import own_start, stopped_record
from glance_tui.node.verdict import against_lb

__all__ = ["CODE_INSTALLED", "CODE_MIXED", "CODE_OLD", "NodeFacts", "against_lb", "glance_processes", "own_start", "probe_node", "stopped_record"]
