"""From answers to decisions: which backends are Glance, which servers are which nodes, their kind,
the database and the target release — and a question for everything the answers do not decide.

Rules (each decision carries the rule that made it, for the config's comments):

* a backend is Glance when at least one of its servers answers Glance's ``/versions`` on its own
  address; a backend merely *named* like Glance, none of whose servers answers, is a question;
* a node is a server of a Glance backend (one per server name across every instance and backend),
  at the address HAProxy sends it traffic to; a server without a known address, or one name at two
  addresses, is a question;
* the kind is what every reachable node showed; nodes that differ, or one that shows none, ask;
* the database is what every readable node's ``[database] connection`` names; nodes that disagree ask;
* the target release is ``--target-release`` (refused, exit 2, when Glance does not support the jump),
  else the release every packaged node's repository offers as its candidate (when it is newer than what
  runs and a supported jump from it); otherwise ask (Kolla and OSA nodes have no repository to ask).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from glance_tui.adapters.known_hosts import KnownHostsCache
from glance_tui.config import NodeConfig, SSHConfig
from glance_tui.db_target import DbTarget
from glance_tui.errors import GlanceTuiError, UsageError, clipped
from glance_tui.init.lbread import Address, LBServer, StatsPage, lb_config, read_page
from glance_tui.init.nodeprobe import NodeFindings, probe_node
from glance_tui.init.versions import VersionsAnswer, probe_versions
from glance_tui.releases import ORDER, RELEASES, supported_jump
from glance_tui.secrets import Secret

GLANCE_NAME = re.compile(r"glance", re.IGNORECASE)
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PARALLEL = 8  # nodes and addresses probed at once
ASKED = {"deb": "apt-cache policy glance-api", "rpm": "dnf --cacheonly repoquery openstack-glance"}  # by packager, for the rule


class NothingFound(GlanceTuiError):
    """The load balancers show no Glance backend (exit 1: the input was fine, nothing to write)."""


@dataclass
class StatsAuth:
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    password_file: str | None = None


@dataclass
class InitOptions:
    stats_urls: list[str]
    runtime_sockets: list[str] = field(default_factory=list)
    stats_auth: StatsAuth = field(default_factory=StatsAuth)
    stats_secret: tuple[str, Secret] | None = None
    ssh_user: str = "root"
    ssh_port: int = 22
    sudo: bool = False  # ssh.sudo: every command through `sudo -n`, the survey too
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    db_password_file: str | None = None
    target_release: str | None = None
    timeout: float = 5.0


@dataclass
class BackendDecision:
    name: str
    glance: bool | None  # True: Glance; None: a question (named like Glance, nothing answered); False: not Glance
    rule: str


@dataclass
class LBPlan:
    page: StatsPage
    name: str
    backends: list[BackendDecision]

    @property
    def glance_backends(self) -> list[str]:
        return [b.name for b in self.backends if b.glance]


@dataclass
class NodePlan:
    name: str
    server: str
    address: Address | None
    versions: VersionsAnswer | None = None
    findings: NodeFindings | None = None
    questions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    held: str = ""  # why this server cannot be a node as it is (written commented out, under its question)

    def values(self) -> dict[str, str]:
        """The node's keys as the config has them."""
        return {"name": self.name, "ssh_host": self.address.host if self.address else "", "lb_server": self.server,
                "api_url": f"http://{self.address}" if self.address else ""}


def invalid(model: type[BaseModel], values: dict[str, Any]) -> str:
    """Why ``model`` refuses ``values`` (one line), or "" when it accepts them."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        inner = err.get("ctx", {}).get("error")
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {getattr(inner, 'what', None) or err['msg']}"
    return ""


@dataclass
class Decision:
    value: str | None
    rule: str
    question: str = ""
    placeholder: str = ""  # loads the rest of the file when ``value`` is None (validation only; the file has a question)


@dataclass
class Discovery:
    options: InitOptions
    lbs: list[LBPlan]
    nodes: list[NodePlan]
    kind: Decision
    database: DbTarget | None
    database_rule: str
    database_question: str
    target: Decision
    choices: dict[str, list[str]] = field(default_factory=dict)  # database key -> the values nodes named


def node_name(server: str) -> str:
    """The node's name: the server's, with characters a node name cannot have replaced by '-'."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", server).lstrip("-_.")[:64] or "node"
    return name if _NODE_NAME.fullmatch(name) else "node-" + name[:59]


def lb_name(url: str, taken: set[str]) -> str:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or "lb"
    base = "haproxy-" + re.sub(r"[^A-Za-z0-9_.-]", "-", host).strip("-.")[:50]
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


async def _bounded(limit: asyncio.Semaphore, coro):  # type: ignore[no-untyped-def]
    async with limit:
        return await coro


async def read_pages(options: InitOptions) -> list[StatsPage]:
    if len(options.runtime_sockets) > len(options.stats_urls):
        raise UsageError(f"{len(options.runtime_sockets)} --runtime-socket for {len(options.stats_urls)} --stats-url",
                         fix="give at most one --runtime-socket per --stats-url, in the same order")
    sockets = options.runtime_sockets + [None] * (len(options.stats_urls) - len(options.runtime_sockets))  # type: ignore[list-item]
    configs = [lb_config(url, sock, options.stats_secret, options.timeout) for url, sock in zip(options.stats_urls, sockets)]
    results = await asyncio.gather(*(read_page(cfg) for cfg in configs), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


def decide_backends(page: StatsPage, answers: dict[Address, VersionsAnswer]) -> list[BackendDecision]:
    out = []
    for backend, servers in page.backends.items():
        seen = [answers[s.address] for s in servers if s.address in answers]
        glance = [a for a in seen if a.glance]
        if glance:
            out.append(BackendDecision(backend, True, f"{len(glance)} of its {len(servers)} servers answer Glance's /versions ({glance[0].detail})"))
        elif GLANCE_NAME.search(backend) and servers:
            why = seen[0].detail if seen else "no server address is known"
            out.append(BackendDecision(backend, None, f"named like Glance, but none of its servers answers Glance's /versions ({why})"))
        else:
            out.append(BackendDecision(backend, False, "no server answers Glance's /versions" if servers else "it has no servers"))
    return out


async def discover(options: InitOptions) -> Discovery:
    pages = await read_pages(options)
    limit = asyncio.Semaphore(PARALLEL)
    addresses = sorted({s.address for p in pages for ss in p.backends.values() for s in ss if s.address}, key=str)
    answers = dict(zip(addresses, await asyncio.gather(*(_bounded(limit, probe_versions(a, options.timeout)) for a in addresses))))
    taken: set[str] = set()
    lbs = [LBPlan(page, lb_name(page.url, taken), decide_backends(page, answers)) for page in pages]
    if not any(lb.glance_backends for lb in lbs):
        seen = "; ".join(f"{lb.page.url}: " + (", ".join(f"{b.name} ({b.rule})" for b in lb.backends) or "no backends") for lb in lbs)
        hidden = any(not lb.page.address_source and any(lb.page.backends.values()) for lb in lbs)
        raise NothingFound(f"no Glance backend found ({clipped(seen, 600)})",
                           fix="the stats page hides the servers' addresses: add `stats show-legends` to HAProxy's stats section, or give --runtime-socket"
                           if hidden else "give the stats page of the HAProxy in front of Glance; its Glance servers must answer GET /versions")
    nodes = _nodes(lbs, answers)
    await _probe_nodes(nodes, options, limit)
    database, db_rule, db_question, choices = _database(nodes)
    return Discovery(options, lbs, nodes, _kind(nodes), database, db_rule, db_question, _target(nodes, options.target_release), choices)


def _nodes(lbs: list[LBPlan], answers: dict[Address, VersionsAnswer]) -> list[NodePlan]:
    by_server: dict[str, NodePlan] = {}
    for lb in lbs:
        for backend in lb.glance_backends:
            for server in lb.page.backends[backend]:
                _add_server(by_server, server, lb.name)
    taken: dict[str, str] = {}
    by_host: dict[str, str] = {}
    for plan in by_server.values():
        name, i = plan.name, 2
        while name in taken:
            name, i = f"{plan.name}-{i}", i + 1
        plan.name = name
        taken[name] = plan.server
        if plan.address is None:
            plan.questions.append(f"HAProxy does not show the address of server {plan.server}: which host is this node? "
                                  "(add `stats show-legends` to HAProxy's stats section, or give --runtime-socket, and run init again)")
            continue
        plan.versions = answers.get(plan.address)
        problem = invalid(NodeConfig, plan.values())
        if problem:
            plan.held = f"the config refuses it ({problem})"
        elif plan.address.host in by_host:  # one node per machine: its stop, drain and probes would act on the other
            plan.held = (f"server {plan.server} is on the host of server {by_host[plan.address.host]} ({plan.address.host}): one node per "
                         "machine — if both are Glance on one machine, list one in exclude_servers and configure the machine once")
        if not problem:
            by_host.setdefault(plan.address.host, plan.server)
    return list(by_server.values())


def _add_server(by_server: dict[str, NodePlan], server: LBServer, lb: str) -> None:
    plan = by_server.get(server.name)
    if plan is None:
        plan = by_server[server.name] = NodePlan(node_name(server.name), server.name, server.address)
        _admin_note(plan, server, lb)
        return
    _admin_note(plan, server, lb)
    if server.address and plan.address and server.address != plan.address:
        plan.questions.append(f"server {server.name} has another address in {lb}/{server.backend} ({server.address}, here {plan.address}): "
                              "which one is the node? (the same name must be the same node everywhere)")
    elif plan.address is None:
        plan.address = server.address


def _admin_note(plan: NodePlan, server: LBServer, lb: str) -> None:
    """A server out of rotation while init reads (the runtime API's exact admin state): said, not changed."""
    if server.admin_state and server.admin_state != "READY":
        plan.notes.append(f"{lb}/{server.backend}: HAProxy has this server in {server.admin_state} now (runtime API `show servers state`)")


async def _probe_nodes(nodes: list[NodePlan], options: InitOptions, limit: asyncio.Semaphore) -> None:
    ssh = SSHConfig(user=options.ssh_user, port=options.ssh_port, identity_file=options.identity_file, sudo=options.sudo,
                    known_hosts=options.known_hosts, connect_timeout=max(options.timeout, 5.0))
    known = KnownHostsCache()
    reachable = [n for n in nodes if n.address is not None and not n.questions and not n.held]

    async def one(plan: NodePlan) -> None:
        assert plan.address is not None
        cfg = NodeConfig.model_validate(plan.values())
        plan.findings = await _bounded(limit, probe_node(cfg, ssh, known))
        plan.questions += plan.findings.questions
        if plan.findings.problem and plan.findings.reached and not plan.findings.questions:  # logged in: the account, not the address, is in question
            plan.questions.append(f"SSH logged in as {options.ssh_user}, but the read-only survey failed ({plan.findings.problem}): "
                                  "give --ssh-user an account with a shell that may read Glance's config and run init again, "
                                  "or remove this node and list the server in exclude_servers")
        elif plan.findings.problem and not plan.findings.questions:
            plan.questions.append(f"this address answers no SSH ({plan.findings.problem}): is it a Glance node? "
                                  "Correct ssh_host/ssh_port, or remove this node and list the server in exclude_servers")

    results = await asyncio.gather(*(one(n) for n in reachable), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _kind(nodes: list[NodePlan]) -> Decision:
    read = [n for n in nodes if n.findings and not n.findings.problem]
    kinds = {n.name: n.findings.kind for n in read if n.findings}
    if not read:
        return Decision(None, "", "no node could be read: which kind are they? packages | kolla | osa")
    if None in kinds.values():
        unsure = ", ".join(f"{n.name}: {n.findings.kind_reason}" for n in read if n.findings and n.findings.kind is None)
        return Decision(None, "", f"the kind of some nodes is unknown ({unsure}): packages | kolla | osa")
    values = set(kinds.values())
    if len(values) > 1:
        return Decision(None, "", "the nodes differ: " + ", ".join(f"{k}={v}" for k, v in kinds.items()) + ": packages | kolla | osa, per node")
    kind = values.pop()
    return Decision(kind, f"every node read shows it ({read[0].name}: {read[0].findings.kind_reason if read[0].findings else ''})")


def _database(nodes: list[NodePlan]) -> tuple[DbTarget | None, str, str, dict[str, list[str]]]:
    read = [(n.name, n.findings.db) for n in nodes if n.findings and n.findings.db]
    unread = [f"{n.name}: {n.findings.db_problem}" for n in nodes if n.findings and not n.findings.problem and not n.findings.db]
    if not read:
        why = "; ".join(unread) or "no node could be read"
        return None, "", f"no node's [database] connection could be read ({clipped(why, 300)}): which server, port, user and schema?", {}
    targets = {t for _, t in read}
    choices = {"host": sorted({t.host for t in targets}), "port": sorted({str(t.port) for t in targets}),
               "user": sorted({t.user for t in targets}), "schema": sorted({t.schema for t in targets})}
    if len(targets) > 1:
        shown = "; ".join(f"{name}: {t.shown()}" for name, t in read)
        return None, "", f"the nodes name different databases ({shown}): which one is Glance's?", choices
    target = targets.pop()
    if target.socket:
        return None, "", f"the nodes connect through the unix socket {target.socket}: which host and port reach that server from here?", choices
    rule = f"[database] connection of {', '.join(name for name, _ in read)} (its password is not copied)"
    if unread:
        rule += f"; not read on {', '.join(unread)}"
    return target, rule, "", choices


def _target(nodes: list[NodePlan], given: str | None) -> Decision:
    found = _target_of(nodes, given)
    if found.value is None:  # only to validate the rest of the file: never written as a value
        releases = _running(nodes)
        jumps = [r for r in ORDER if releases and supported_jump(releases[0], r)]
        found.placeholder = jumps[0] if jumps else ORDER[-1]
    return found


def _running(nodes: list[NodePlan]) -> list[str]:
    """The releases the read nodes run, oldest first."""
    return sorted({r for n in nodes if n.findings and (r := n.findings.release)}, key=ORDER.index)


def _target_of(nodes: list[NodePlan], given: str | None) -> Decision:
    """Decided only from the truth: ``--target-release`` (refused when Glance does not support the jump
    from a release a node runs), else the release every packaged node's repository offers as its
    candidate, when it is newer than what runs and a supported jump from it. Anything else asks."""
    counted = [n for n in nodes if not n.held]
    releases = _running(counted)
    if given:
        for n in counted:
            r = n.findings.release if n.findings else None
            if r and r != given and not supported_jump(r, given):
                nexts = [x for x in ORDER if supported_jump(r, x)]
                raise UsageError(f"--target-release {given} is not an upgrade Glance supports from {r} (node {n.name} runs {r})",
                                 where="init", fix=f"give a supported next release of {r}: {' | '.join(nexts) or 'none known'}")
        return Decision(given, "--target-release")
    offers: list[str] = []
    unsure: list[str] = []
    candidates: set[str] = set()
    for n in counted:
        f = n.findings
        if f is None or f.problem:
            unsure.append(f"{n.name}: not read")
        elif f.kind != "packages":
            unsure.append(f"{n.name}: {f.kind} node, no package repository to ask" if f.kind else f"{n.name}: kind unknown")
        elif not f.release:
            unsure.append(f"{n.name}: its running release is unknown")
        elif not f.candidate_release:
            unsure.append(f"{n.name}: " + (f.repository or "its repository offers "
                                             + (f"{f.candidate} (no release this tool knows)" if f.candidate else "no glance-api candidate")))
        else:
            candidates.add(f.candidate_release)
            offers.append(f"{n.name} offers {f.candidate_release}")
    seen = "; ".join(offers + unsure) or "no node"
    start = " and ".join(releases)
    jumps = [r for r in ORDER if releases and all(x == r or supported_jump(x, r) for x in releases) and any(x != r for x in releases)]
    ask = f"which release is the target? {' | '.join(jumps)} (each a supported upgrade from {start})" if jumps else (
        f"which release is the target? {' | '.join(ORDER)}" if not releases else f"which release is the target? no release this tool knows is a supported upgrade from {start}")
    running = f"the nodes run {start}: " if releases else "no node's release could be read: "
    if unsure or len(candidates) != 1:
        why = "their package repositories offer different releases" if len(candidates) > 1 else "not every node's package repository could be asked"
        return Decision(None, "", f"{running}{ask} — {why} ({seen})")
    offered = candidates.pop()
    if all(r == offered for r in releases):
        return Decision(None, "", f"{running}{ask} — their package repository offers nothing newer ({seen})")
    if not all(r == offered or supported_jump(r, offered) for r in releases):
        return Decision(None, "", f"{running}{ask} — their package repository offers {offered}, not an upgrade Glance supports from {start} ({seen})")
    asked = " and ".join(ASKED[p] for p in sorted({n.findings.packager for n in counted if n.findings and n.findings.packager}))
    return Decision(offered, f"the nodes run {start}; their package repository offers {offered} ({asked or 'their package manager'} on every node), "
                             "a supported upgrade")


def db_password_source(options: InitOptions) -> tuple[str, str]:
    """("password_file", path) when --db-password-file is given, else ("password_env", "GLANCE_DB_PASSWORD")."""
    if options.db_password_file:
        return "password_file", str(Path(options.db_password_file).expanduser().absolute())
    return "password_env", "GLANCE_DB_PASSWORD"


__all__ = ["Discovery", "InitOptions", "NothingFound", "StatsAuth", "discover", "RELEASES"]
