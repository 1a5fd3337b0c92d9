"""A :class:`~glance_tui.init.discover.Discovery` as a commented TOML config, validated before it is returned.

Every value is written together with the decoded document it must produce; the text is then parsed
back and must give exactly that document (the round trip), and that document must load as a
config (:func:`glance_tui.config.load_config`, secrets aside: they are the operator's to provide).
A value the config would refuse (a hostile stats page, a node's odd answer) is written commented
out under a ``# QUESTION:`` line instead, so the file loads — except an undecided target release,
which is required and never guessed: it is validated with a placeholder, then written commented out,
so ``check`` refuses the file, naming the question, until it is answered.
"""

from __future__ import annotations

import tempfile
import textwrap
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from glance_tui.config import DatabaseConfig, LoadBalancerConfig, NodeConfig, load_config
from glance_tui.errors import GlanceTuiError, clipped, one_line
from glance_tui.init.discover import Discovery, LBPlan, NodePlan, NothingFound, db_password_source, invalid
from glance_tui.init import rpmnode
from glance_tui.init.kindplan import KindPlan, plan_kinds

QUESTION = "QUESTION:"
WIDTH = 110


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    out = ['"']
    for char in str(value):
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out) + '"'


class Document:
    """Lines of TOML and the document they decode to, built together."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.data: dict[str, Any] = {}
        self._table: dict[str, Any] = self.data
        self.questions = 0
        self.pending: tuple[str, str, str] | None = None  # (table, key, placeholder): a required value left to a question

    def comment(self, text: str, prefix: str = "# ") -> None:
        for line in textwrap.wrap(one_line(text), WIDTH - len(prefix), break_long_words=True, break_on_hyphens=False) or [""]:
            self.lines.append(prefix + line)

    def question(self, text: str) -> None:
        """One line, however long: ``grep QUESTION`` shows each whole."""
        self.questions += 1
        self.lines.append(f"# {QUESTION} {one_line(text)}")

    def blank(self) -> None:
        self.lines.append("")

    def table(self, name: str, *, array: bool = False) -> None:
        self.lines.append(f"[[{name}]]" if array else f"[{name}]")
        table: dict[str, Any] = {}
        if array:
            self.data.setdefault(name, []).append(table)
        else:
            self.data[name] = table
        self._table = table

    def subtable(self, parent: str, name: str) -> None:
        """``[parent.name]``: a table inside ``[parent]``, or inside the last ``[[parent]]`` entry."""
        self.lines.append(f"[{parent}.{name}]")
        table: dict[str, Any] = {}
        owner = self.data[parent]
        (owner[-1] if isinstance(owner, list) else owner)[name] = table
        self._table = table

    def value(self, key: str, value: Any, note: str = "") -> None:
        self._table[key] = value
        self.lines.append(f"{key} = {toml_value(value)}" + (f"  # {one_line(note)}" if note else ""))

    def commented(self, key: str, value: Any, note: str = "") -> None:
        self.lines.append(f"# {key} = {toml_value(value)}" + (f"  # {one_line(note)}" if note else ""))

    def commented_table(self, name: str, values: dict[str, Any], *, array: bool = False) -> None:
        self.lines.append(f"# [[{name}]]" if array else f"# [{name}]")
        for key, value in values.items():
            self.commented(key, value)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(found: Discovery, *, now: datetime | None = None) -> tuple[str, int]:
    """(the config text, the number of questions in it); raises if it would not load."""
    doc = Document()
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    doc.comment(f"Written by `glance-tui init` on {when} from {', '.join(lb.page.url for lb in found.lbs)}.")
    doc.comment("Each value says which answer decided it. A line starting with `# QUESTION:` is something init could not decide "
                "from what the load balancers and nodes answered: decide it and edit the lines below it, then run `glance-tui check`. "
                "config.example.toml explains every key.")
    marker = len(doc.lines)
    doc.blank()
    _database(doc, found)
    for lb in found.lbs:
        _load_balancer(doc, found, lb)
    _ssh(doc, found)
    kinds = plan_kinds(found)
    _commands(doc, found, kinds)
    written = [n for n in found.nodes if _node(doc, found, n, kinds)]
    if not written:
        raise NothingFound("no Glance server of the load balancers could be written as a node",
                           fix="see the servers' addresses on the stats page (`stats show-legends`), or give --runtime-socket")
    _policy(doc, found)
    doc.lines.insert(marker, f"# {doc.questions} question{'s' if doc.questions != 1 else ''} below." if doc.questions
                     else "# No question: every value was decided from the answers.")
    text = doc.text
    if doc.pending:  # the last table: the rest of the file is validated with a placeholder that is never written
        table, key, placeholder = doc.pending
        readback(text, doc.data)
        validate(text + f"{key} = {toml_value(placeholder)}\n", {**doc.data, table: {**doc.data[table], key: placeholder}})
    else:
        validate(text, doc.data)
    return text, doc.questions


def readback(text: str, data: dict[str, Any]) -> None:
    if tomllib.loads(text) != data:
        raise GlanceTuiError("the written config does not read back as what init decided (a bug of glance-tui init)",
                             fix="report it; meanwhile write the config by hand from config.example.toml")


def validate(text: str, data: dict[str, Any]) -> None:
    """The text decodes to ``data`` and loads as a config (secrets aside); a failure here is a bug of init."""
    readback(text, data)
    with tempfile.TemporaryDirectory(prefix="glance-tui-init-") as tmp:
        path = Path(tmp) / "glance-tui.toml"
        path.write_text(text, encoding="utf-8")
        load_config(path, secrets=False)


def _database(doc: Document, found: Discovery) -> None:
    doc.table("database")
    key, source = db_password_source(found.options)
    target = found.database
    values: dict[str, Any] = {}
    if target is not None:
        values = {"host": target.host, "port": target.port, "user": target.user, "schema": target.schema}
        problem = invalid(DatabaseConfig, {**values, key: source})
        if problem:
            doc.question(f"the nodes' database cannot be written as it is ({problem}): correct these lines")
            for k, v in values.items():
                doc.commented(k, v)
            values = {}
        else:
            doc.comment(f"Decided from the {found.database_rule}.")
            if _loopback(target.host):
                doc.comment(f"{target.host} is the database as the NODES see it; glance-tui connects from this machine: "
                            "if that is not the same machine, write the address that reaches the same server from here.")
            for k, v in values.items():
                doc.value(k, v)
    else:
        doc.question(found.database_question)
        for k, options in found.choices.items():
            for v in options:
                doc.commented(k, int(v) if k == "port" else v)
    note = ("--db-password-file: the password is never copied from the nodes" if key == "password_file"
            else "the NAME of the variable holding the password (never copied from the nodes): export it before check and run")
    doc.value(key, source, note)
    doc.blank()


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _load_balancer(doc: Document, found: Discovery, lb: LBPlan) -> None:
    page, auth = lb.page, found.options.stats_auth
    values: dict[str, Any] = {"name": lb.name, "kind": "haproxy", "stats_url": page.url, "backends": lb.glance_backends}
    for key in ("username", "username_env", "password_env", "password_file"):
        if getattr(auth, key):
            values[key] = getattr(auth, key) if key != "password_file" else str(Path(auth.password_file or "").expanduser().absolute())
    if page.runtime_socket:
        values["runtime_socket"] = page.runtime_socket
    values["admin"] = page.admin
    if not lb.glance_backends:
        doc.comment(f"{page.url} routes to no Glance backend ({'; '.join(f'{b.name}: {b.rule}' for b in lb.backends) or 'no backends'}): "
                    "left out.")
        doc.commented_table("load_balancers", values, array=True)
        doc.blank()
        return
    problem = invalid(LoadBalancerConfig, values)
    if problem:
        doc.question(f"{page.url} cannot be written as it is ({problem}): correct it and uncomment")
        doc.commented_table("load_balancers", values, array=True)
        doc.blank()
        return
    doc.table("load_balancers", array=True)
    for b in lb.backends:
        if b.glance is None:
            doc.question(f"backend {b.name} — {b.rule}. If it is Glance, add it to backends below and run init again once its servers answer.")
    for b in lb.backends:
        if b.glance:
            doc.comment(f"backend {b.name} is Glance: {b.rule}.")
    others = [b for b in lb.backends if b.glance is False]
    if others:
        doc.comment("not Glance: " + "; ".join(f"{b.name} ({b.rule})" for b in others) + ".")
    doc.comment(f"Server addresses from the {page.address_source or 'stats page (none shown)'}.")
    if page.runtime_problem:  # given, but it did not answer as it must: drain state and admin reads would be unknown
        doc.question(f"--runtime-socket {page.runtime_socket}: {page.runtime_problem}. Correct it (HAProxy's `stats socket … level admin`) "
                     "and run init again, or remove runtime_socket")
    for key in ("name", "kind", "stats_url", "backends", "username", "username_env", "password_env", "password_file", "runtime_socket"):
        if key in values:
            doc.value(key, values[key])
    if page.admin_ok:
        doc.value("admin", values["admin"], f"checked: {page.admin_detail}")
    else:
        doc.question(f"drain and ready need admin rights, and no channel was shown to have them: {page.admin_detail or 'unknown'}. "
                     "Add `stats admin if TRUE` (or an ACL) to its stats section, or give --runtime-socket of a `stats socket` with `level admin`")
        doc.value("admin", values["admin"])
    if not page.runtime_socket:
        doc.comment("runtime_socket: not given (--runtime-socket). Recommended: the stats page shows DOWN, not DRAIN, for a drained "
                    "server whose check fails; the runtime API tells it exactly.")
        doc.commented("runtime_socket", "unix:/run/haproxy/admin.sock")
    if page.info:
        doc.comment(f"The runtime API answers as HAProxy {clipped(page.info.get('Version', '?'), 40)} "
                    f"(`show info`; up {clipped(page.info.get('Uptime', '?'), 40)}).")
    doc.comment("hard_stop_after: this HAProxy's `hard-stop-after` (the global section of haproxy.cfg). init cannot read it: neither "
                "the stats CSV nor the runtime API's `show info` has a field for it (HAProxy's stat and info field lists). Unset: after "
                "a reload, in-flight counts are unknown until you decide at the drain timeout.")
    doc.commented("hard_stop_after", 30)
    doc.blank()


def _ssh(doc: Document, found: Discovery) -> None:
    o = found.options
    doc.table("ssh")
    doc.value("user", o.ssh_user)
    doc.value("port", o.ssh_port)
    if o.sudo:
        doc.value("sudo", True, "--sudo: every command through `sudo -n` (never prompts), as the survey ran")
    if o.identity_file:
        doc.value("identity_file", str(Path(o.identity_file).expanduser().absolute()))
    doc.value("known_hosts", str(Path(o.known_hosts).expanduser().absolute()) if o.known_hosts != "~/.ssh/known_hosts" else o.known_hosts,
              "every node's host key was verified against it")
    doc.blank()


def _common(found: Discovery, attr: str) -> set[Any]:
    return {getattr(n.findings, attr) for n in found.nodes if n.findings and not n.findings.problem}


OSA_UPGRADE_UNSET = "echo 'glance-tui init: write the command that installs the target venv on '{node} >&2; exit 1"


def _commands(doc: Document, found: Discovery, kinds: KindPlan) -> None:
    doc.table("commands")
    kind = found.kind
    if kind.value is None:
        doc.question(f"which kind of node is this? {kind.question}")
    else:
        doc.comment(f"Node kind: {kind.value} — {kind.rule}.")
    if kinds.kind is not None:
        doc.value("kind", kinds.kind, "what the nodes showed" + (" (most of them: see each node's own kind)" if kinds.node_kind else ""))
    if kinds.kind == "packages":
        units = {n.findings.unit for n in found.nodes if n.findings and n.findings.kind == "packages"}
        if len(units) == 1 and (unit := units.pop()) != "glance-api":
            doc.value("services", [unit], "the systemd unit every node shows")
        elif len(units) > 1:
            doc.question(f"the nodes run Glance under different units ({', '.join(sorted(map(str, units)))}): services = [which?]")
        rdo = _rdo_commands(doc, found, kinds)
        runtimes = _common(found, "runtime") - {None}
        if runtimes & {"uwsgi", "mod_wsgi"} and not rdo:
            doc.comment(f"The nodes run {', '.join(sorted(runtimes))}: date the Glance code itself rather than a script, e.g. "
                        "installed_at = \"stat -L -c %Z /usr/lib/python3/dist-packages/glance/__init__.py\"")
        reads = {n.findings.read_config for n in found.nodes if n.findings and n.findings.kind == "packages"} - {""}
        if len(reads) == 1 and (read := reads.pop()) != "cat /etc/glance/glance-api.conf":
            doc.value("read_config", read, "the config file Glance runs with on every node (--config-file)")
        elif len(reads) > 1:
            doc.question(f"the nodes run Glance with different config files ({' | '.join(sorted(reads))}): read_config must print the one "
                         "glance-manage uses on each node (one command for every node)")
    if "osa" in (kinds.kind, *kinds.node_kind.values()):
        doc.question("how is the target venv installed? OpenStack-Ansible builds it from its deploy host: write upgrade, e.g. "
                     "\"ssh deploy openstack-ansible os-glance-install.yml --limit {node} --tags glance-install\" (until then it fails, changing nothing)")
        doc.value("upgrade", OSA_UPGRADE_UNSET)
    for q in kinds.questions:
        doc.question(q)
    if kinds.shared and kinds.kind in ("kolla", "osa"):
        doc.blank()
        doc.subtable("commands", kinds.kind)
        for key, value in kinds.shared.items():
            doc.value(key, value)
    doc.blank()


def _rdo_commands(doc: Document, found: Discovery, kinds: KindPlan) -> bool:
    """RDO nodes: the packages kind's defaults are Debian's (apt-get, dpkg-query): write RDO's (rpm, dnf)
    as explicit [commands] keys when every node is an RDO packages node; a mix is asked (no per-node commands)."""
    read = [n for n in found.nodes if n.findings and not n.findings.problem and n.findings.kind]
    rdo = [n.name for n in read if n.findings and n.findings.kind == "packages" and n.findings.packager == "rpm"]
    if not rdo:
        return False
    if len(rdo) < len(read) or kinds.node_kind:
        others = ", ".join(f"{n.name}: {n.findings.kind}" + (f" ({n.findings.packager})" if n.findings.packager else "")
                           for n in read if n.findings and n.name not in rdo)
        doc.question(f"{', '.join(rdo)} {'is an RDO node' if len(rdo) == 1 else 'are RDO nodes'} (rpm, dnf) beside other nodes ({others}); "
                     "[commands] holds one upgrade, installed_version and installed_at for every packaged node: which? RDO's would be "
                     + "; ".join(f"{k} = {toml_value(v)}" for k, v in rpmnode.COMMANDS.items()))
        return False
    doc.comment("RDO's commands (every node is an RDO node: openstack-glance from rpm, its candidate from dnf): the packages kind's "
                "defaults are Debian's (apt-get, dpkg-query).")
    for key, value in rpmnode.COMMANDS.items():
        doc.value(key, value)
    return True


def _node(doc: Document, found: Discovery, n: NodePlan, kinds: KindPlan) -> bool:
    values: dict[str, Any] = n.values()
    problem = n.held or (invalid(NodeConfig, values) if n.address else "HAProxy shows no address")
    f = n.findings
    if problem:
        doc.question(f"server {n.server} is not written as a node: {problem}. " + " ".join(n.questions))
        doc.commented_table("nodes", values, array=True)
        doc.blank()
        return False
    doc.table("nodes", array=True)
    doc.comment(f"HAProxy server {n.server} at {n.address}" + (f"; /versions: {n.versions.detail}" if n.versions else ""))
    for q in n.questions:
        doc.question(q)
    for note in n.notes:
        doc.comment(f"note: {note}")
    if f and not f.problem:
        doc.comment(f"kind: {f.kind or 'unknown'} ({f.kind_reason})" + (f"; server: {f.runtime}" if f.runtime else ""))
        doc.comment(f"release: {f.release or 'unknown'}" + (f" (version {f.version})" if f.version else "")
                    + (f"; the repository offers {f.candidate}" if f.candidate else ""))
        if f.db:
            doc.comment(f"database: {f.db.shown()} (password not copied)")
        elif f.db_problem:
            doc.comment(f"database: not read — {f.db_problem}")
        for note in f.notes:
            doc.comment(f"note: {note}")
    for key, value in values.items():
        doc.value(key, value)
    if n.name in kinds.node_kind:
        doc.value("kind", kinds.node_kind[n.name], "this node's own kind")
    own = kinds.own.get(n.name)
    if own:
        doc.subtable("nodes", kinds.node_kind.get(n.name) or str(kinds.kind))
        for key, value in own.items():
            doc.value(key, value)
    doc.blank()
    return True


def _policy(doc: Document, found: Discovery) -> None:
    """A decided target is a value; an undecided one is a commented line under its question, so the
    file does not load (``check`` names the question) until the operator answers it."""
    doc.table("policy")
    target = found.target
    if target.value:
        doc.value("target_release", target.value, f"decided: {target.rule}")
        return
    doc.question(f"target_release: {target.question}")
    doc.comment("Write the release you are upgrading to on the line below and uncomment it (or run init again with --target-release): "
                "until then the file does not load.")
    doc.commented("target_release", "<release>")
    doc.pending = ("policy", "target_release", target.placeholder)
