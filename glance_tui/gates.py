"""Gates: the preconditions that must hold before a step may change anything.

Each gate is evaluated live against fresh probes and answers with a reason and a fix when
it fails. Only gates marked ``soft`` can be overridden, and only with a typed reason.
"""

from __future__ import annotations

import asyncio
import configparser
import json
from typing import TYPE_CHECKING

import httpx

from glance_tui.errors import GlanceTuiError, HostKeyError
from glance_tui.gate_types import Gate, GateFn, GateResult, Remedy, fail, ok
from glance_tui.releases import ORDER, schema_release, supported_jump, upgrade_path

# Gate, GateFn, GateResult, Remedy, ok and fail live in gate_types (a leaf); re-exported here.
__all__ = ["Gate", "GateFn", "GateResult", "Remedy", "fail", "ok"]

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context


async def evaluate_all(gates: list[Gate] | tuple[Gate, ...], ctx: "Context") -> list[GateResult]:
    """Evaluate gates in parallel (they only read)."""
    return list(await asyncio.gather(*(g.evaluate(ctx) for g in gates)))


# ---------------------------------------------------------------- preflight gates


async def _db_version(ctx: "Context") -> GateResult:
    db = await ctx.db_state()
    if db.facts is None:
        return fail("db-version", f"cannot read the database: {db.error}", "check [database] host/port/user and the password source")
    f = db.facts
    if f.flavour not in ("MySQL", "MariaDB"):
        return fail("db-version", f"unsupported database server {f.server_version!r}", "rolling upgrades need MySQL or MariaDB")
    if f.version < (5, 5, 0):
        return fail("db-version", f"{f.flavour} {f.server_version} is older than 5.5", "upgrade the database server to MySQL/MariaDB 5.5 or later first")
    return ok("db-version", f"{f.flavour} {'.'.join(map(str, f.version))}")


def _truthy(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("true", "1", "yes", "on")


def parse_api_conf(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read_string(text)
    return parser


def api_conf_problems(text: str) -> list[str]:
    """What in a glance-api.conf breaks the guide's 'v2 only, no registry' prerequisite."""
    try:
        conf = parse_api_conf(text)
    except configparser.Error as exc:
        return [f"glance-api.conf cannot be parsed: {exc.__class__.__name__}"]
    default = conf.defaults()
    problems = []
    if _truthy(default.get("enable_v1_api")):
        problems.append("enable_v1_api = True (Images API v1 is on)")
    if _truthy(default.get("enable_v2_api")) is False:
        problems.append("enable_v2_api = False (Images API v2 is off)")
    if _truthy(default.get("enable_v2_registry")):
        problems.append("enable_v2_registry = True (the Glance Registry is in use)")
    if _truthy(default.get("enable_v1_registry")):
        problems.append("enable_v1_registry = True (the Glance Registry is in use)")
    data_api = default.get("data_api")
    if data_api and "registry" in data_api:
        problems.append(f"data_api = {data_api} (the Glance Registry is in use)")
    return problems


async def _versions_problems(url: str, timeout: float) -> list[str]:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            resp = await client.get(f"{url}/versions")
    except httpx.HTTPError as exc:
        return [f"GET {url}/versions failed: {exc.__class__.__name__}"]
    if resp.status_code not in (200, 300):
        return [f"GET {url}/versions answered {resp.status_code}"]
    try:
        ids = [v.get("id", "") for v in resp.json().get("versions", [])]
    except (json.JSONDecodeError, AttributeError, ValueError):
        return [f"GET {url}/versions is not a versions document"]
    if not ids:
        return [f"GET {url}/versions lists no API version"]
    v1 = [i for i in ids if i.startswith("v1")]
    return [f"the API advertises {', '.join(v1)} (v1 must be off)"] if v1 else []


async def _api_v2_only(ctx: "Context") -> GateResult:
    problems: list[str] = []

    async def one(name: str) -> None:
        node = ctx.config.node(name)
        result = await ctx.run(ctx.commands(name).read_config())
        if not result.ok:
            problems.append(f"{name}: cannot read glance-api.conf (exit {result.exit_status}: {' | '.join(result.tail(1))})")
        else:
            problems.extend(f"{name}: {p}" for p in api_conf_problems(result.stdout))
        facts = (await ctx.node_facts()).get(name)
        if facts and facts.running:
            problems.extend(f"{name}: {p}" for p in await _versions_problems(node.api_url, ctx.config.http_timeout))

    await asyncio.gather(*(one(n.name) for n in ctx.config.nodes))
    if problems:
        return fail("api-v2-only", "; ".join(sorted(problems)), "set enable_v1_api = False, enable_v2_registry = False and data_api = glance.db.sqlalchemy.api in glance-api.conf, restart, re-check")
    return ok("api-v2-only", "Images API v2 only, no registry, on every node")


async def _node_count(ctx: "Context") -> GateResult:
    n = len(ctx.config.nodes)
    if n < 2:
        return fail("node-count", f"only {n} Glance node configured", "a rolling upgrade needs at least two nodes behind the load balancer; add one ([[nodes]], role = \"new\")")
    return ok("node-count", f"{n} nodes")


def unknown_servers(ctx: "Context", lb) -> list[str]:
    """Servers of the listed backends that are neither a configured node nor excluded there
    (an unknown Glance server would keep serving old code through contract)."""
    mine = {n.lb_server for n in ctx.config.nodes}
    excluded = {c.name: set(c.exclude_servers) for c in ctx.config.lbs}
    found = []
    for server, view in sorted(lb.views.items()):
        if server in mine:
            continue
        for where in sorted(view.rows):
            if server not in excluded.get(where.split("/", 1)[0], set()):
                found.append(f"{server} in {where}")
    return found


async def _lb_mapping(ctx: "Context") -> GateResult:
    lb = await ctx.lb_facts()
    if lb.error:
        return fail("lb-mapping", f"cannot read every load balancer: {lb.error}", "check each load balancer's stats_url, backends and credentials; an unreachable instance blocks")
    missing = []
    for n in ctx.config.nodes:
        view = lb.views.get(n.lb_server)
        where = ", ".join(view.missing) if view else "every backend"
        if view is None or not view.complete:
            missing.append(f"{n.name} → {n.lb_server} (missing in {where})")
    if missing:
        known = ", ".join(sorted(lb.views)) or "none"
        return fail("lb-mapping", f"not a server of every backend: {', '.join(missing)} (servers there: {known})",
                    "set each node's lb_server to its server name in the backends; add a newly provisioned node as a server "
                    "in maintenance (`disabled`) so step 6 can put it into rotation")
    strangers = unknown_servers(ctx, lb)
    if strangers:
        return fail("lb-mapping", f"unknown server(s) in the Glance backends: {', '.join(strangers)}",
                    "add each as a [[nodes]] entry, or list it in that load balancer's exclude_servers if it is not a Glance node of this deployment")
    probes = await ctx.cluster.lb.probe_admin()
    bad = [f"{name} ({p.channel}): {p.detail}" for name, p in sorted(probes.items()) if not p.ok]
    if bad:
        return fail("lb-mapping", f"the load balancer's admin channel does not work: {'; '.join(bad)}", "enable `stats admin` on the stats page or a `level admin` stats socket, see config.example.toml")
    channels = ", ".join(sorted({p.channel for p in probes.values()}))
    return ok("lb-mapping", f"every node maps to one server on {len(ctx.cluster.lb.places)} backend(s); admin via {channels}")


async def _ssh_reachable(ctx: "Context") -> GateResult:
    """A trivial command on every node. The connection verifies the host key against
    known_hosts; only when it is refused is the key fetched again, to name the state and the
    fingerprint (a second key exchange per node on every check would cost for nothing)."""
    problems = []

    async def one(name: str) -> None:
        try:
            result = await ctx.run_text(name, "true")
        except HostKeyError as exc:
            status = await ctx.cluster.ssh.get(name).host_key_check()
            problems.append(f"{name}: host key {status.state} ({status.fingerprint or 'no fingerprint'}): {status.detail}" if not status.ok
                            else f"{name}: {exc.message}")
            return
        except GlanceTuiError as exc:
            problems.append(f"{name}: {exc.message}")
            return
        if not result.ok:
            problems.append(f"{name}: a trivial command failed (exit {result.exit_status})")

    await asyncio.gather(*(one(n.name) for n in ctx.config.nodes))
    if problems:
        return fail("ssh", "; ".join(sorted(problems)), "verify each host key out of band and add it to known_hosts; check SSH users and keys")
    return ok("ssh", "every node reachable with a verified host key")


async def _same_release(ctx: "Context") -> GateResult:
    facts = await ctx.node_facts()
    target = ctx.config.policy.target_release
    existing = {n: f for n, f in facts.items() if ctx.config.node(n).role == "existing"}
    unknown = [f"{n}: {f.error or f.version_error or 'unknown release ' + str(f.version)}" for n, f in existing.items() if f.error or not f.release]
    if unknown:
        return fail("same-release", "cannot tell the release of " + "; ".join(unknown), "check the installed_version command template on those nodes")
    code = [f"{n}: {f.service}" for n, f in existing.items() if f.fresh is None]
    if code:
        return fail("same-release", "cannot tell which code runs on " + "; ".join(code),
                    "check the processes and installed_at command templates on those nodes (unknown blocks)")
    old = {f.release for n, f in existing.items() if f.release and f.release != target}
    if len(old) > 1:
        detail = ", ".join(f"{n}={f.version}" for n, f in sorted(facts.items()))
        return fail("same-release", f"nodes run different releases ({detail})", "bring every node to the same starting release before a rolling upgrade")
    if ctx.state.start_release and old and old != {ctx.state.start_release}:
        return fail("same-release", f"nodes run {old.pop()}, but this run started from {ctx.state.start_release}", "start a new run")
    start = next(iter(old), ctx.state.start_release or target)
    stale = [f"{n}: {f.stale_text}" for n, f in sorted(existing.items()) if f.stale_text]
    note = f"; {'; '.join(stale)} (the plan drains, stops and restarts them)" if stale else ""
    return ok("same-release", f"starting release {start}, target {target}{note}")


async def _upgrade_path(ctx: "Context") -> GateResult:
    """The jump from the release the nodes run (read from them; this run's recorded start once some
    are upgraded) to ``policy.target_release`` must be one Glance supports."""
    facts = await ctx.node_facts()
    target = ctx.config.policy.target_release
    existing = {n: f for n, f in facts.items() if ctx.config.node(n).role == "existing"}
    starts = {f.release for f in existing.values() if f.release and f.release != target}
    if ctx.state.start_release and ctx.state.start_release != target:
        starts.add(ctx.state.start_release)
    unknown = sorted(n for n, f in existing.items() if not f.release)
    if unknown and not starts:
        return fail("upgrade-path", f"cannot tell the starting release of {', '.join(unknown)}", "check the installed_version command template on those nodes")
    if not starts:
        return ok("upgrade-path", f"every node already has {target}")
    problems = []
    for start in sorted(starts):
        if supported_jump(start, target):
            continue
        path = upgrade_path(start, target)
        if path is None:
            problems.append(f"{start} → {target} is not an upgrade (a rolling upgrade goes forward only)")
        else:
            through = ", then ".join(path[1:-1])
            problems.append(f"{start} → {target} skips releases Glance's rolling upgrade needs (supported: N → N+1, and SLURP → next SLURP); "
                            f"go through {through}: {' → '.join(path)}")
    if problems:
        first = upgrade_path(sorted(starts)[0], target)
        fix = (f"set policy.target_release = \"{first[1]}\", upgrade, then run again for the next release" if first
               else "set policy.target_release to a release after the one the nodes run")
        return fail("upgrade-path", "; ".join(problems), fix)
    start = sorted(starts)[0]
    kind = "SLURP → next SLURP" if ORDER.index(target) - ORDER.index(start) > 1 else "N → N+1"
    return ok("upgrade-path", f"{start} → {target} ({kind})")


async def _db_check_consistent(ctx: "Context") -> GateResult:
    target = ctx.config.policy.target_release
    check = await ctx.newest_db_check(early=True)
    if check is None:
        return fail("db-check", "no node can run glance-manage", "fix SSH/version problems first")
    if check.release != target:
        # Only the old code exists: it must see its own schema as up to date.
        if check.code == 0:
            return ok("db-check", f"db check on {check.node} ({check.release}): up to date; heads {', '.join(check.heads) or '?'}")
        return fail("db-check", f"db check on {check.node} ({check.release}) says {check.meaning}", "the database is not at the state the installed release expects; finish or repair the previous upgrade first")
    if check.code is None or check.code == 1:
        return fail("db-check", f"db check with the {target} code failed: {check.error}", "check the database connection in glance-api.conf on the upgraded node")
    facts = await ctx.node_facts()
    old_running = [n for n, f in facts.items() if f.running is not False and not f.on(target)]
    schema = schema_release(check.heads)
    # contracted past what the old code knows; on a path with no schema change (e.g. 2025.1 → 2026.1
    # on 2024.1's schema) "up to date" is the old code's own schema too
    old_running = [n for n in old_running
                   if schema is None or not facts[n].release or facts[n].release not in ORDER
                   or ORDER.index(facts[n].release) < ORDER.index(schema)]
    if check.code == 0 and old_running:
        return fail("db-check", f"the schema is contracted but {', '.join(old_running)} still run the old release", "stop those nodes now: the old code cannot use the contracted schema")
    return ok("db-check", f"db check on {check.node}: {check.meaning}")


def _clients_check(gate_id: str, *, contract: bool) -> GateFn:
    """Every client of the schema is known (db_clients.py); at contract, the nodes among them run the target code."""

    async def check(ctx: "Context") -> GateResult:
        from glance_tui.db_clients import check_clients

        reason, detail = await check_clients(ctx, contract=contract)
        return fail(gate_id, reason, detail) if reason else ok(gate_id, detail)

    return check


_db_clients = _clients_check("db-clients", contract=False)


PREFLIGHT: tuple[Gate, ...] = (
    Gate("db-version", "MySQL/MariaDB 5.5 or later", _db_version),
    Gate("api-v2-only", "Images API v2 only, no Glance Registry", _api_v2_only),
    Gate("node-count", "Several Glance nodes", _node_count),
    Gate("lb-mapping", "Every node is one LB server; admin channel works", _lb_mapping),
    Gate("ssh", "SSH to every node with a verified host key", _ssh_reachable),
    Gate("same-release", "All nodes on the same starting release", _same_release),
    Gate("upgrade-path", "An upgrade path Glance supports (N → N+1, SLURP → next SLURP)", _upgrade_path),
    Gate("db-check", "glance-manage db check matches the run", _db_check_consistent),
    Gate("db-clients", "Every client of the Glance schema is a node or a known client", _db_clients),
)


# ---------------------------------------------------------------- step gates


async def _backup_verified(ctx: "Context") -> GateResult:
    if ctx.state.backup is None:
        return fail("backup", "no verified database backup in this run", "run step 1 (Backup) first")
    if not await ctx.backup_still_valid():
        return fail("backup", f"the backup {ctx.state.backup.get('path')} is gone or changed", "run step 1 (Backup) again")
    return ok("backup", f"{ctx.state.backup.get('path')} (sha256 {str(ctx.state.backup.get('sha256'))[:12]}…)")


async def _new_node_chosen(ctx: "Context") -> GateResult:
    if not ctx.state.new_node:
        return fail("new-node", "no NEW NODE chosen", "choose the NEW NODE (an existing node, or one with role = \"new\")")
    return ok("new-node", ctx.state.new_node)


async def _new_node_upgraded(ctx: "Context") -> GateResult:
    name = ctx.state.new_node
    if not name:
        return fail("new-node-upgraded", "no NEW NODE chosen", "complete step 2")
    f = (await ctx.node_facts()).get(name)
    target = ctx.config.policy.target_release
    if not f or f.release != target:
        return fail("new-node-upgraded", f"{name} runs {f.version if f else '?'}, not {target}", "complete step 3 (upgrade the NEW NODE)")
    if ctx.config.policy.target_version and f.version != ctx.config.policy.target_version:
        return fail("new-node-upgraded", f"{name} runs {f.version}, not {ctx.config.policy.target_version}", "install the target version on the NEW NODE")
    return ok("new-node-upgraded", f"{name} on {f.version}")


async def _new_node_stopped(ctx: "Context") -> GateResult:
    name = ctx.state.new_node
    f = (await ctx.node_facts()).get(name or "")
    if not f or f.error:
        return fail("new-node-stopped", f"cannot probe {name}: {f.error if f else 'not chosen'}", "check SSH to the node")
    if f.running is None:
        return fail("new-node-stopped", f"cannot tell whether Glance runs on {name}: {f.service}", "find what serves the node (the reason names it) and stop it, or fix commands.process_patterns / listeners; unknown blocks")
    if f.running:
        return fail("new-node-stopped", f"Glance still runs on {name} (pids {', '.join(map(str, f.pids)) or '?'})",
                    "stop it: complete step 2, or stop the service the package upgrade started (see README: policy-rc.d)")
    return ok("new-node-stopped", f.reason or f"no Glance process on {name}")


def _binlog_remedy() -> Remedy:
    async def apply(ctx: "Context") -> None:
        old = await ctx.cluster.db.set_log_bin_trust_function_creators(True)
        ctx.state.log_bin_trust_old = old
        ctx.journal.write("db.variable", name="log_bin_trust_function_creators", old=old, new=True)

    return Remedy("set log_bin_trust_function_creators = 1 (restored after contract)", "SET GLOBAL log_bin_trust_function_creators = 1", apply)


async def _binlog_triggers(ctx: "Context") -> GateResult:
    db = await ctx.db_state()
    if db.facts is None:
        return fail("binlog", f"cannot read the database: {db.error}", "check the database connection")
    f = db.facts
    if not f.log_bin:
        return ok("binlog", "binary logging is off")
    if f.has_super:
        return ok("binlog", "binary logging is on; the Glance user has SUPER")
    if f.log_bin_trust_function_creators:
        return ok("binlog", "binary logging is on; log_bin_trust_function_creators = 1")
    can_set = any("BINLOG ADMIN" in g.upper() for g in f.grants)
    return fail(
        "binlog",
        "binary logging is on, the Glance user lacks SUPER and log_bin_trust_function_creators = 0: expand would fail creating triggers",
        "as a DB admin run `SET GLOBAL log_bin_trust_function_creators = 1` (or GRANT SUPER to the Glance user), then re-check",
        remedy=_binlog_remedy() if can_set else None,
    )


async def _expand_done(ctx: "Context") -> GateResult:
    check = await ctx.target_db_check()
    if check is None or check.code is None:
        return fail("expanded", "db check with the new code did not answer", "complete steps 3-4")
    if check.code == 3:
        return fail("expanded", "db check says expand is still next", "run step 4 (expand)")
    if check.code == 1:
        return fail("expanded", f"db check failed: {check.error}", "check the database connection on the NEW NODE")
    return ok("expanded", check.meaning)


async def _migrate_done(ctx: "Context") -> GateResult:
    check = await ctx.target_db_check()
    if check is None or check.code not in (0, 5):
        meaning = check.meaning if check else "no answer"
        return fail("migrated", f"data migrations are not complete (db check: {meaning})", "run step 5 (migrate) until db check says contract is next")
    return ok("migrated", check.meaning)


def min_in_rotation_gate(node: str) -> Gate:
    async def check(ctx: "Context") -> GateResult:
        lb = await ctx.lb_facts()
        if lb.error:
            return fail("min-rotation", f"cannot read every load balancer: {lb.error}", "fix the LB stats endpoint")
        server = ctx.config.node(node).lb_server
        mine = lb.views.get(server)
        # Capacity is the configured nodes only: an excluded server is not a Glance node of this
        # deployment, and a `backup` server takes traffic only when every active one is down.
        nodes = {n.lb_server for n in ctx.config.nodes}
        up = [name for name, v in lb.views.items() if name != server and name in nodes and v.in_rotation is True and v.state == "UP"]
        others = [name for name in up if all(r.backup is False for r in lb.views[name].rows.values())]
        backups = sorted(set(up) - set(others))
        need = ctx.config.policy.min_in_rotation
        if mine is not None and mine.admin_out:
            return ok("min-rotation", f"{node} is already out of rotation; {len(others)} others serve")
        if len(others) < need:
            listed = ", ".join(sorted(others)) or "none"
            note = f"; not counted: {', '.join(backups)} (a backup server, or its bck column unknown)" if backups else ""
            return fail("min-rotation", f"taking {node} out would leave {len(others)} node(s) in rotation ({listed}); policy needs {need}{note}",
                        "bring another node UP (or lower policy.min_in_rotation deliberately)")
        return ok("min-rotation", f"{len(others)} other node(s) stay in rotation")

    return Gate("min-rotation", f"Enough nodes stay in rotation without {node}", check)


async def _new_node_serving(ctx: "Context") -> GateResult:
    name = ctx.state.new_node or ""
    lb = await ctx.lb_facts()
    f = (await ctx.node_facts()).get(name)
    view = lb.views.get(ctx.config.node(name).lb_server) if name else None
    state = view.state if view else "?"
    if not f or not f.on(ctx.config.policy.target_release) or not f.running or view is None or state != "UP":
        what = f.stale_text or f.service if f else "not probed"
        return fail("new-node-serving", f"the NEW NODE {name or '?'} is not serving the new release (LB {state}; service {what})", "complete step 6 (start the NEW NODE and put it in rotation)")
    return ok("new-node-serving", f"{name} UP on {f.version}")


async def _all_nodes_target(ctx: "Context") -> GateResult:
    facts = await ctx.node_facts()
    target = ctx.config.policy.target_release
    behind = [f"{n} ({f.stale_text or f.version or f.error or '?'}{'' if f.fresh is not None else '; ' + f.service})"
              for n, f in sorted(facts.items()) if not f.on(target)]
    if behind:
        return fail("all-upgraded", f"not running {target}: {', '.join(behind)}", "finish step 7 for those nodes (drain, stop, upgrade, start)")
    return ok("all-upgraded", f"every node on {target}")


async def _no_old_process(ctx: "Context") -> GateResult:
    facts = await ctx.node_facts()
    target = ctx.config.policy.target_release
    old = [f"{n} ({f.stale_text or f.service}{', installed ' + f.version if f.version and not f.stale_text else ''})"
           for n, f in sorted(facts.items()) if f.running is not False and not f.on(target)]
    if old:
        return fail("no-old-service", f"old Glance services may still run on {', '.join(old)}", "stop and upgrade them (or restart them on the new code); contract breaks the old code")
    return ok("no-old-service", f"no node runs an old Glance service ({', '.join(ctx.config.commands.services)})")


async def _contract_next(ctx: "Context") -> GateResult:
    check = await ctx.target_db_check()
    if check is None or check.code != 5:
        return fail("contract-next", f"db check does not say contract is next ({check.meaning if check else 'no answer'})", "complete expand and migrate first")
    return ok("contract-next", "db check: contract is next")


async def _one_database(ctx: "Context") -> GateResult:
    from glance_tui.db_target import compare

    name = ctx.state.new_node
    if not name:
        return fail("one-database", "no NEW NODE chosen", "complete step 2")
    reason, detail = await compare(ctx, name)
    return fail("one-database", reason, detail) if reason else ok("one-database", detail)


BACKUP_VERIFIED = Gate("backup", "A verified backup of the Glance database exists", _backup_verified)
NEW_NODE_CHOSEN = Gate("new-node", "The NEW NODE is chosen", _new_node_chosen)
NEW_NODE_UPGRADED = Gate("new-node-upgraded", "The NEW NODE runs the target release", _new_node_upgraded)
NEW_NODE_STOPPED = Gate("new-node-stopped", "Glance is stopped on the NEW NODE", _new_node_stopped)
BINLOG_TRIGGERS = Gate("binlog", "Triggers allowed (binary log / SUPER / log_bin_trust_function_creators)", _binlog_triggers)
EXPAND_DONE = Gate("expanded", "The database is expanded", _expand_done)
MIGRATE_DONE = Gate("migrated", "Data migrations are complete (db check 5 or 0)", _migrate_done)
NEW_NODE_SERVING = Gate("new-node-serving", "The NEW NODE serves the new release", _new_node_serving, forward_only=True)
ALL_NODES_TARGET = Gate("all-upgraded", "Every node reports the target release", _all_nodes_target)
NO_OLD_PROCESS = Gate("no-old-service", "No node runs an old Glance service", _no_old_process)
CONTRACT_NEXT = Gate("contract-next", "db check says contract is next", _contract_next)
DB_CLIENTS_ON_TARGET = Gate("db-clients-target", "Every client of the Glance schema is known and runs the target code",
                            _clients_check("db-clients-target", contract=True))
ONE_DATABASE = Gate("one-database", "The NEW NODE's glance-manage changes the database the tool backed up", _one_database)
