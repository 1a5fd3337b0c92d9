"""Every gate passes and fails for the right reason (fast: probes are scripted here;
the same gates run against real services in test_engine_services.py)."""

from __future__ import annotations

from types import SimpleNamespace

from dataclasses import dataclass, field
from typing import Any

import pytest

from glance_tui import gates as G
from glance_tui.adapters.database import DatabaseFacts
from glance_tui.adapters.haproxy import AdminProbe, ServerStats
from glance_tui.adapters.local import CommandResult
from glance_tui.adapters.ssh import HostKeyStatus
from glance_tui.commands import NodeCommands
from glance_tui.config import parse_config
from glance_tui.context import Context, RunState
from glance_tui.probes import DBState, DbCheck, LBFacts, NodeFacts

GOOD_CONF = "[DEFAULT]\nbind_host = 0.0.0.0\n[database]\nconnection = mysql+pymysql://g@db/glance\n"


def make_config(n: int = 3, **policy: Any):
    import os

    os.environ["GATE_TEST_DB_PW"] = "pw-gates"
    return parse_config({
        "database": {"password_env": "GATE_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "nodes": [{"name": f"g{i}", "ssh_host": f"10.0.0.{i}", "lb_server": f"g{i}", "api_url": f"http://10.0.0.{i}:9292"} for i in range(1, n + 1)],
        "policy": {"target_release": "2024.1", **policy},
    })


def stats(name: str, state: str = "UP", scur: int = 0, backup: bool | None = False) -> ServerStats:
    return ServerStats(name, state, state, scur, 0, 0, "L7OK", 1, backup=backup)


def facts(version: str = "5.5.5-10.11.6-MariaDB", *, log_bin=False, trust=False, sup=False, grants=None) -> DatabaseFacts:
    from glance_tui.adapters.database import parse_server_version

    flavour, ver = parse_server_version(version)
    return DatabaseFacts(version, flavour, ver, grants or ["GRANT USAGE ON *.* TO `glance`@`%`"], sup, log_bin, trust, ["2023_1_contract01"], 20)


def node(name: str, version: str | None = "26.1.0", running: bool | None = True, error: str = "", stale: bool | None = False) -> NodeFacts:
    """A probed node; a running one runs its installed code unless ``stale``."""
    from glance_tui.releases import release_of

    return NodeFacts(name, name, version, release_of(version), running, error, stale=stale if running else (None if running is None else False))


class FakeShell:
    def __init__(self, ctx: "FakeCtx", name: str) -> None:
        self.ctx, self.name = ctx, name

    async def host_key_check(self) -> HostKeyStatus:
        return self.ctx.hostkeys.get(self.name, HostKeyStatus(True, "verified", "SHA256:abc", ""))


@dataclass
class FakeCluster:
    ctx: "FakeCtx"

    @property
    def lb(self):
        ctx = self.ctx

        class LB:
            places = ("lb/glance_api",)

            async def probe_admin(self) -> dict[str, AdminProbe]:
                return {"lb": ctx.admin}

        return LB()

    @property
    def ssh(self):
        ctx = self.ctx

        class Pool:
            def get(self, name: str) -> FakeShell:
                return FakeShell(ctx, name)

        return Pool()

    async def db_check(self, node: str, release: str | None = None) -> DbCheck:
        return DbCheck(node, self.ctx.old_check, release, ("2023_1_contract01",))


@dataclass
class FakeCtx:
    config: Any = field(default_factory=make_config)
    state: RunState = field(default_factory=RunState)
    nodes: dict[str, NodeFacts] = field(default_factory=lambda: {f"g{i}": node(f"g{i}") for i in (1, 2, 3)})
    lb: LBFacts = field(default_factory=lambda: LBFacts({f"g{i}": stats(f"g{i}") for i in (1, 2, 3)}))
    db: DBState = field(default_factory=lambda: DBState(facts()))
    check: DbCheck | None = None
    old_check: int = 0
    admin: AdminProbe = field(default_factory=lambda: AdminProbe(True, "http", "admin allowed"))
    hostkeys: dict[str, HostKeyStatus] = field(default_factory=dict)
    confs: dict[str, str] = field(default_factory=dict)
    backup_valid: bool = True
    journal: Any = None
    _early: Any = None  # newest_db_check(early=True) asks nothing early here: no verdict cache is empty
    verdicts: Any = field(default_factory=lambda: SimpleNamespace(empty=False))

    def __post_init__(self) -> None:
        self.cluster = FakeCluster(self)

    async def node_facts(self):
        return self.nodes

    async def lb_facts(self):
        return self.lb

    async def db_state(self):
        return self.db

    async def target_db_check(self):
        return self.check

    newest_db_check = Context.newest_db_check  # the real fallback logic, over these scripted probes

    async def db_check_on(self, node: str, facts: NodeFacts) -> DbCheck:
        return await self.cluster.db_check(node, facts.release)

    async def backup_still_valid(self):
        return self.backup_valid

    def commands(self, name: str) -> NodeCommands:
        return NodeCommands(self.config, name)

    async def run(self, cmd) -> CommandResult:
        return CommandResult(cmd.command, 0, self.confs.get(cmd.node, GOOD_CONF), "", 0.01, False)

    async def run_text(self, name: str, text: str) -> CommandResult:
        status = self.hostkeys.get(name)
        if status is not None and not status.ok:  # as the real connect: the key is refused
            from glance_tui.errors import HostKeyError

            raise HostKeyError(f"host key not accepted: {status.detail}", where=name)
        return CommandResult(text, 0, "", "", 0.01, False)


async def check(gate: G.Gate, ctx: FakeCtx) -> G.GateResult:
    return await gate.evaluate(ctx)  # type: ignore[arg-type]


def gate(gate_id: str) -> G.Gate:
    return next(g for g in G.PREFLIGHT if g.id == gate_id)


# ---------------------------------------------------------------- preflight


async def test_db_version_passes_and_fails():
    assert (await check(gate("db-version"), FakeCtx())).ok
    r = await check(gate("db-version"), FakeCtx(db=DBState(facts("5.1.73-log"))))
    assert not r.ok and "older than 5.5" in r.reason and "5.5" in r.fix
    r = await check(gate("db-version"), FakeCtx(db=DBState(None, error="access denied")))
    assert not r.ok and "access denied" in r.reason


async def test_api_v2_only_reads_each_conf(monkeypatch):
    async def no_v1(url, timeout):
        return []

    monkeypatch.setattr(G, "_versions_problems", no_v1)
    assert (await check(gate("api-v2-only"), FakeCtx())).ok
    bad = GOOD_CONF.replace("[DEFAULT]\n", "[DEFAULT]\nenable_v1_api = True\nenable_v2_registry = true\n")
    r = await check(gate("api-v2-only"), FakeCtx(confs={"g2": bad}))
    assert not r.ok
    assert "g2: enable_v1_api = True" in r.reason and "g2: enable_v2_registry = True" in r.reason
    assert "g1" not in r.reason


def test_api_conf_problems_cover_old_release_options():
    conf = "[DEFAULT]\nenable_v2_api = False\ndata_api = glance.db.registry.api\n"
    problems = G.api_conf_problems(conf)
    assert any("enable_v2_api = False" in p for p in problems)
    assert any("data_api" in p for p in problems)
    assert G.api_conf_problems(GOOD_CONF) == []


async def test_node_count():
    assert (await check(gate("node-count"), FakeCtx())).ok
    ctx = FakeCtx(config=make_config(1), nodes={"g1": node("g1")})
    r = await check(gate("node-count"), ctx)
    assert not r.ok and "at least two" in r.fix


async def test_lb_mapping():
    assert (await check(gate("lb-mapping"), FakeCtx())).ok
    r = await check(gate("lb-mapping"), FakeCtx(lb=LBFacts({"g1": stats("g1"), "g2": stats("g2"), "other": stats("other")})))
    assert not r.ok and "g3 → g3" in r.reason and "other" in r.reason
    r = await check(gate("lb-mapping"), FakeCtx(admin=AdminProbe(False, "http", "DENY")))
    assert not r.ok and "admin channel" in r.reason
    r = await check(gate("lb-mapping"), FakeCtx(lb=LBFacts({}, error="connection refused")))
    assert not r.ok and "connection refused" in r.reason


async def test_ssh_unreachable_node_is_named():
    from glance_tui.errors import AdapterError

    ctx = FakeCtx()

    async def refused(name, text):
        if name == "g2":
            raise AdapterError("SSH connection to 10.0.0.2:22 refused", where="g2")
        return CommandResult(text, 0, "", "", 0.01, False)

    ctx.run_text = refused
    r = await check(gate("ssh"), ctx)
    assert not r.ok and r.reason.startswith("g2: ") and "SSH connection to 10.0.0.2:22 refused" in r.reason, r.reason


async def test_ssh_host_keys():
    assert (await check(gate("ssh"), FakeCtx())).ok
    ctx = FakeCtx(hostkeys={"g3": HostKeyStatus(False, "changed", "SHA256:evil", "does not match known_hosts")})
    r = await check(gate("ssh"), ctx)
    assert not r.ok and "g3: host key changed (SHA256:evil)" in r.reason


async def test_upgrade_path_allows_n_plus_one_and_slurp_to_slurp_only():
    # the start release is read from the nodes, the target from policy.target_release
    for start_version, target in (("26.1.0", "2024.1"), ("28.2.0", "2025.1"), ("30.2.0", "2026.1"), ("32.0.0", "2026.2"), ("31.1.0", "2026.1")):
        nodes = {f"g{i}": node(f"g{i}", start_version) for i in (1, 2, 3)}
        r = await check(gate("upgrade-path"), FakeCtx(config=make_config(target_release=target), nodes=nodes))
        assert r.ok, (start_version, target, r.reason)
    old = {f"g{i}": node(f"g{i}", "26.1.0") for i in (1, 2, 3)}  # 2023.1
    r = await check(gate("upgrade-path"), FakeCtx(config=make_config(target_release="2025.1"), nodes=old))
    assert not r.ok and "2023.1 → 2025.1" in r.reason and "go through 2024.1: 2023.1 → 2024.1 → 2025.1" in r.reason, r.reason
    assert 'policy.target_release = "2024.1"' in r.fix
    two_steps = {f"g{i}": node(f"g{i}", "27.0.0") for i in (1, 2, 3)}  # 2023.2 → 2024.2: not SLURP → SLURP
    r = await check(gate("upgrade-path"), FakeCtx(config=make_config(target_release="2024.2"), nodes=two_steps))
    assert not r.ok and "2023.2 → 2024.1 → 2024.2" in r.reason
    newer = {f"g{i}": node(f"g{i}", "30.2.0") for i in (1, 2, 3)}
    r = await check(gate("upgrade-path"), FakeCtx(config=make_config(target_release="2024.1"), nodes=newer))
    assert not r.ok and "not an upgrade" in r.reason
    # mid-run: the recorded start counts even once every node has the target
    done = {f"g{i}": node(f"g{i}", "30.2.0") for i in (1, 2, 3)}
    r = await check(gate("upgrade-path"), FakeCtx(config=make_config(target_release="2025.1"), nodes=done, state=RunState(start_release="2023.1")))
    assert not r.ok and "2023.1 → 2025.1" in r.reason
    unknown = {**old, "g2": node("g2", None)}
    r = await check(gate("upgrade-path"), FakeCtx(nodes={n: f for n, f in unknown.items() if n == "g2"} | {"g1": node("g1", "28.2.0")}))
    assert not r.ok and "cannot tell the starting release of g2" in r.reason


async def test_same_release():
    assert (await check(gate("same-release"), FakeCtx())).ok
    mixed = {"g1": node("g1", "26.1.0"), "g2": node("g2", "27.0.0"), "g3": node("g3", "26.1.0")}
    r = await check(gate("same-release"), FakeCtx(nodes=mixed))
    assert not r.ok and "different releases" in r.reason
    # mid-run: old + target is consistent
    mid = {"g1": node("g1", "28.2.0"), "g2": node("g2", "26.1.0"), "g3": node("g3", "26.1.0")}
    assert (await check(gate("same-release"), FakeCtx(nodes=mid))).ok
    unknown = {**mid, "g2": node("g2", None, error="")}
    r = await check(gate("same-release"), FakeCtx(nodes=unknown))
    assert not r.ok and "cannot tell the release of g2" in r.reason


async def test_db_check_consistent():
    assert (await check(gate("db-check"), FakeCtx())).ok
    r = await check(gate("db-check"), FakeCtx(old_check=1))
    assert not r.ok
    mid = {"g1": node("g1", "28.2.0", running=True), "g2": node("g2", "26.1.0"), "g3": node("g3", "26.1.0")}
    assert (await check(gate("db-check"), FakeCtx(nodes=mid, check=DbCheck("g1", 5, "2024.1")))).ok
    r = await check(gate("db-check"), FakeCtx(nodes=mid, check=DbCheck("g1", 0, "2024.1")))
    assert not r.ok and "contracted" in r.reason and "g2" in r.reason
    r = await check(gate("db-check"), FakeCtx(nodes=mid, check=DbCheck("g1", 0, "2024.1", ("2024_1_contract01",))))
    assert not r.ok and "g2" in r.reason  # 2023.1 code on a schema contracted for 2024.1
    # a path with no schema change (2025.1 -> 2026.1 on 2024.1's schema): up to date is the old code's schema too,
    # e.g. with the target pre-staged under the old processes
    slurp = {"g1": node("g1", "32.0.0", running=True), "g2": node("g2", "30.2.0", running=True), "g3": node("g3", "30.2.0", running=True)}
    ctx = FakeCtx(nodes=slurp, check=DbCheck("g1", 0, "2026.1", ("2024_1_contract01",)), config=make_config(target_release="2026.1"))
    r = await check(gate("db-check"), ctx)
    assert r.ok, r.reason
    # a head the tool cannot place is unknown: the safe reading (old code may not use it)
    ctx = FakeCtx(nodes=slurp, check=DbCheck("g1", 0, "2026.1", ("2026_1_contract01x",)), config=make_config(target_release="2026.1"))
    assert not (await check(gate("db-check"), ctx)).ok


def test_schema_release_names_the_newest_release_of_the_heads():
    from glance_tui.releases import schema_release

    assert schema_release(["2024_1_contract01"]) == "2024.1"
    assert schema_release(["2023_1_contract01", "2024_1_expand01"]) == "2024.1"
    assert schema_release(["mitaka01"]) is None and schema_release([]) is None


# ---------------------------------------------------------------- step gates


async def test_backup_gate():
    ctx = FakeCtx()
    r = await check(G.BACKUP_VERIFIED, ctx)
    assert not r.ok and "no verified database backup" in r.reason
    ctx.state.backup = {"path": "/b/x.sql", "sha256": "ab" * 32}
    assert (await check(G.BACKUP_VERIFIED, ctx)).ok
    ctx.backup_valid = False
    r = await check(G.BACKUP_VERIFIED, ctx)
    assert not r.ok and "gone or changed" in r.reason


async def test_new_node_gates():
    ctx = FakeCtx()
    assert not (await check(G.NEW_NODE_CHOSEN, ctx)).ok
    ctx.state.new_node = "g1"
    assert (await check(G.NEW_NODE_CHOSEN, ctx)).ok
    r = await check(G.NEW_NODE_STOPPED, ctx)
    assert not r.ok and "still runs on g1" in r.reason
    ctx.nodes["g1"] = node("g1", running=False)
    assert (await check(G.NEW_NODE_STOPPED, ctx)).ok
    r = await check(G.NEW_NODE_UPGRADED, ctx)
    assert not r.ok and "not 2024.1" in r.reason
    ctx.nodes["g1"] = node("g1", "28.2.0", running=False)
    assert (await check(G.NEW_NODE_UPGRADED, ctx)).ok
    ctx.config = make_config(target_version="28.3.0")
    r = await check(G.NEW_NODE_UPGRADED, ctx)
    assert not r.ok and "28.3.0" in r.reason


async def test_binlog_gate_and_remedy():
    assert (await check(G.BINLOG_TRIGGERS, FakeCtx())).ok
    assert (await check(G.BINLOG_TRIGGERS, FakeCtx(db=DBState(facts(log_bin=True, sup=True))))).ok
    assert (await check(G.BINLOG_TRIGGERS, FakeCtx(db=DBState(facts(log_bin=True, trust=True))))).ok
    r = await check(G.BINLOG_TRIGGERS, FakeCtx(db=DBState(facts(log_bin=True))))
    assert not r.ok and "log_bin_trust_function_creators" in r.fix and r.remedy is None
    grants = ["GRANT BINLOG ADMIN ON *.* TO `glance`@`%`"]
    r = await check(G.BINLOG_TRIGGERS, FakeCtx(db=DBState(facts(log_bin=True, grants=grants))))
    assert not r.ok and r.remedy is not None and "SET GLOBAL" in r.remedy.command


async def test_expand_and_migrate_gates():
    for code, expanded, migrated in ((3, False, False), (4, True, False), (5, True, True), (0, True, True)):
        ctx = FakeCtx(check=DbCheck("g1", code, "2024.1"))
        assert (await check(G.EXPAND_DONE, ctx)).ok is expanded, code
        assert (await check(G.MIGRATE_DONE, ctx)).ok is migrated, code
    assert not (await check(G.EXPAND_DONE, FakeCtx(check=None))).ok


async def test_min_in_rotation():
    g = G.min_in_rotation_gate("g1")
    assert (await check(g, FakeCtx())).ok
    lb = LBFacts({"g1": stats("g1"), "g2": stats("g2", "DRAIN"), "g3": stats("g3", "DOWN")})
    r = await check(g, FakeCtx(lb=lb))
    assert not r.ok and "leave 0 node(s)" in r.reason
    r = await check(G.min_in_rotation_gate("g1"), FakeCtx(config=make_config(n=4, min_in_rotation=3)))
    assert not r.ok and "policy needs 3" in r.reason
    # already drained: nothing more is taken out
    lb = LBFacts({"g1": stats("g1", "DRAIN"), "g2": stats("g2", "DRAIN"), "g3": stats("g3", "DOWN")})
    assert (await check(g, FakeCtx(lb=lb))).ok


async def test_new_node_serving():
    ctx = FakeCtx()
    ctx.state.new_node = "g1"
    r = await check(G.NEW_NODE_SERVING, ctx)
    assert not r.ok
    ctx.nodes["g1"] = node("g1", "28.2.0")
    assert (await check(G.NEW_NODE_SERVING, ctx)).ok
    ctx.lb = LBFacts({**ctx.lb.servers, "g1": stats("g1", "DRAIN")})
    assert not (await check(G.NEW_NODE_SERVING, ctx)).ok


async def test_contract_gates():
    done = {f"g{i}": node(f"g{i}", "28.2.0") for i in (1, 2, 3)}
    ctx = FakeCtx(nodes=done, check=DbCheck("g1", 5, "2024.1"))
    for g in (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS, G.CONTRACT_NEXT):
        assert (await check(g, ctx)).ok, g.id
    ctx.nodes = {**done, "g3": node("g3", "26.1.0", running=True)}
    r = await check(G.ALL_NODES_TARGET, ctx)
    assert not r.ok and "g3 (26.1.0)" in r.reason
    r = await check(G.NO_OLD_PROCESS, ctx)
    assert not r.ok and "g3" in r.reason
    ctx.nodes = {**done, "g3": node("g3", "26.1.0", running=False)}
    assert (await check(G.NO_OLD_PROCESS, ctx)).ok  # stopped old node: no old service runs
    ctx.check = DbCheck("g1", 4, "2024.1")
    r = await check(G.CONTRACT_NEXT, ctx)
    assert not r.ok and "migrate is next" in r.reason


async def test_a_crashing_gate_blocks():
    async def boom(ctx):
        raise RuntimeError("kaput")

    r = await G.Gate("x", "crashes", boom).evaluate(FakeCtx())  # type: ignore[arg-type]
    assert not r.ok and "kaput" in r.reason


@pytest.mark.parametrize("soft", [True, False])
async def test_soft_flag_is_carried(soft):
    async def no(ctx):
        return G.fail("x", "nope", "fix it")

    r = await G.Gate("x", "t", no, soft=soft).evaluate(FakeCtx())  # type: ignore[arg-type]
    assert r.soft is soft and not r.ok


def make_config_with_new_node():
    import os

    os.environ["GATE_TEST_DB_PW"] = "pw-gates"
    nodes = [{"name": f"g{i}", "ssh_host": f"10.0.0.{i}", "lb_server": f"g{i}", "api_url": f"http://10.0.0.{i}:9292"} for i in (1, 2)]
    nodes.append({"name": "fresh", "ssh_host": "10.0.0.9", "lb_server": "fresh", "api_url": "http://10.0.0.9:9292", "role": "new"})
    return parse_config({
        "database": {"password_env": "GATE_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "nodes": nodes,
        "policy": {"target_release": "2024.1", "new_node": "fresh"},
    })


async def test_a_newly_provisioned_node_is_not_held_to_the_old_release():
    # role = "new": no Glance installed yet, in the backend but in maintenance
    ctx = FakeCtx(config=make_config_with_new_node(),
                  nodes={"g1": node("g1"), "g2": node("g2"), "fresh": NodeFacts("fresh", "10.0.0.9", None, None, False, "", "version command failed (exit 127)")},
                  lb=LBFacts({"g1": stats("g1"), "g2": stats("g2"), "fresh": stats("fresh", "MAINT")}))
    assert (await check(gate("same-release"), ctx)).ok
    assert (await check(gate("lb-mapping"), ctx)).ok
    assert (await check(gate("node-count"), ctx)).ok
    ctx.state.new_node = "fresh"
    assert (await check(G.NEW_NODE_STOPPED, ctx)).ok
    # every node, new ones included, must be a server of the backend
    ctx.lb = LBFacts({"g1": stats("g1"), "g2": stats("g2")})
    r = await check(gate("lb-mapping"), ctx)
    assert not r.ok and "fresh → fresh" in r.reason and "maintenance" in r.fix


# ---------------------------------------------------------------- running code, unknown, every LB


async def test_a_stale_node_is_reported_and_never_counts_as_upgraded():
    target = {f"g{i}": node(f"g{i}", "28.2.0") for i in (1, 2, 3)}
    target["g2"] = node("g2", "28.2.0", stale=True)
    ctx = FakeCtx(nodes=target, check=DbCheck("g1", 5, "2024.1"))
    r = await check(gate("same-release"), ctx)
    assert r.ok and "g2: installed 28.2.0, still running code started before the upgrade" in r.reason
    for g in (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS):
        r = await check(g, ctx)
        assert not r.ok and "g2 (installed 28.2.0, still running code started before the upgrade)" in r.reason, g.id
    ctx.nodes["g2"] = node("g2", "28.2.0", running=False)  # stopped: nothing old runs
    assert (await check(G.NO_OLD_PROCESS, ctx)).ok and (await check(G.ALL_NODES_TARGET, ctx)).ok
    ctx.nodes["g2"] = node("g2", "28.2.0", stale=None)  # running, code age unknown: blocks
    assert not (await check(G.NO_OLD_PROCESS, ctx)).ok
    r = await check(gate("same-release"), ctx)
    assert not r.ok and "cannot tell which code runs on g2" in r.reason


async def test_unknown_running_blocks_and_is_named():
    ctx = FakeCtx()
    ctx.state.new_node = "g1"
    ctx.nodes["g1"] = NodeFacts("g1", "g1", "28.2.0", "2024.1", None, running_error="processes command failed (exit 255)")
    r = await check(G.NEW_NODE_STOPPED, ctx)
    assert not r.ok and "cannot tell whether Glance runs on g1" in r.reason and "exit 255" in r.reason
    r = await check(G.NO_OLD_PROCESS, FakeCtx(nodes={**FakeCtx().nodes, "g3": ctx.nodes["g1"]}))
    assert not r.ok and "g3 (unknown (processes command failed (exit 255))" in r.reason


def test_a_stale_node_describes_itself():
    f = node("g2", "28.2.0", stale=True)
    assert f.fresh is False and not f.on("2024.1") and f.installed("2024.1")
    assert f.service == "running code started before the install of 28.2.0"
    assert node("g2", "28.2.0").on("2024.1") and node("g2", "28.2.0", running=False).on("2024.1")
    assert not node("g2", "28.2.0", running=None).on("2024.1")


def make_lb_config(exclude: list[str]):
    import os

    os.environ["GATE_TEST_DB_PW"] = "pw-gates"
    return parse_config({
        "database": {"password_env": "GATE_TEST_DB_PW"},
        "load_balancers": [{"name": "lb", "stats_url": "http://lb:8404/stats", "backends": ["glance_api"], "exclude_servers": exclude}],
        "nodes": [{"name": f"g{i}", "ssh_host": f"10.0.0.{i}", "lb_server": f"g{i}", "api_url": f"http://10.0.0.{i}:9292"} for i in (1, 2, 3)],
        "policy": {"target_release": "2024.1"},
    })


async def test_lb_mapping_refuses_an_unknown_server_unless_excluded():
    lb = LBFacts({**{f"g{i}": stats(f"g{i}") for i in (1, 2, 3)}, "old-glance": stats("old-glance")})
    r = await check(gate("lb-mapping"), FakeCtx(config=make_lb_config([]), lb=lb))
    assert not r.ok and "unknown server(s) in the Glance backends: old-glance in lb/backend" in r.reason and "exclude_servers" in r.fix
    assert (await check(gate("lb-mapping"), FakeCtx(config=make_lb_config(["old-glance"]), lb=lb))).ok


async def test_min_in_rotation_counts_a_down_but_ready_server_as_still_to_drain():
    # g1 DOWN by health check with admin READY: draining it is still needed, and it takes nothing out
    lb = LBFacts({"g1": stats("g1", "DOWN"), "g2": stats("g2"), "g3": stats("g3", "MAINT")})
    assert (await check(G.min_in_rotation_gate("g1"), FakeCtx(lb=lb))).ok
    lb = LBFacts({"g1": stats("g1"), "g2": stats("g2", "DOWN"), "g3": stats("g3", "MAINT")})
    r = await check(G.min_in_rotation_gate("g1"), FakeCtx(lb=lb))
    assert not r.ok and "leave 0 node(s)" in r.reason


def test_forward_only_gates_never_hold_back_restoring_capacity():
    from glance_tui.engine import Engine
    from glance_tui.plan import _node_actions, Step

    acts = {a.id: a for a in _node_actions("g2")}
    step = Step("node:g2", "7.1", "Upgrade g2", "", (G.NEW_NODE_SERVING, G.MIGRATE_DONE), tuple(acts.values()), None, node="g2")  # type: ignore[arg-type]
    assert G.NEW_NODE_SERVING.forward_only and not G.MIGRATE_DONE.forward_only
    for forward in ("drain", "wait-drained", "stop"):
        assert G.NEW_NODE_SERVING in Engine.gates_of(step, acts[forward]), forward
    for back in ("upgrade", "start", "health", "ready", "wait-up"):
        gates = Engine.gates_of(step, acts[back])
        assert G.NEW_NODE_SERVING not in gates and G.MIGRATE_DONE in gates, back
    assert G.NEW_NODE_SERVING in Engine.gates_of(step)  # the step itself still shows it


def test_gate_types_are_a_leaf():
    import glance_tui.events as events
    from glance_tui import api, gate_types

    assert G.GateResult is gate_types.GateResult is api.GateResult and G.Remedy is api.Remedy
    assert events.GateResult is gate_types.GateResult
    source = open(events.__file__).read()
    assert "glance_tui.gates " not in source and "from glance_tui.gates import" not in source


@pytest.mark.parametrize(("processes_ok", "flag_exit", "expected"), [
    (True, 1, False),    # both say stopped
    (False, 1, None),    # the processes reading failed: the override alone never makes it "stopped"
    (True, 0, None),     # they disagree: unknown
    (False, 0, True),    # running is the safe side
    (True, 7, None),     # an unexpected exit code is unknown
])
async def test_is_running_override_never_turns_unknown_into_stopped(processes_ok, flag_exit, expected):
    import dataclasses

    from glance_tui.node.verdict import Health
    from glance_tui.probes import Cluster

    base = make_config()
    config = base.model_copy(update={"commands": base.commands.model_copy(update={"is_running": "my-check"})})
    cluster = Cluster(config)

    async def run(cmd, **kw):
        if cmd.command == "my-check":
            return CommandResult(cmd.command, flag_exit, "", "", 0.01, False)
        if "ps -eo" in cmd.command:
            return CommandResult(cmd.command, 0 if processes_ok else 255, "1700000000\n" if processes_ok else "", "", 0.01, False)
        if "stat" in cmd.command:
            return CommandResult(cmd.command, 0, "1600000000\n", "", 0.01, False)
        if "ss -Htlnp" in cmd.command:
            return CommandResult(cmd.command, 0, "", "", 0.01, False)  # nothing listens on the API port
        return CommandResult(cmd.command, 0, "glance-api\t2:26.1.0-0ubuntu1\n", "", 0.01, False)

    async def refused(url):
        return Health(url, refused=True)

    cluster.run = run  # type: ignore[method-assign]
    cluster.read_health = refused  # type: ignore[method-assign]
    try:
        facts = await cluster.probe_node("g1")
    finally:
        await cluster.close()
    assert facts.running is expected, dataclasses.asdict(facts)


async def test_excluded_and_backup_servers_are_not_capacity():
    g = G.min_in_rotation_gate("g1")
    # g2 is a `backup` server and old-glance is excluded: taking g1 out leaves no active Glance node
    lb = LBFacts({"g1": stats("g1"), "g2": stats("g2", backup=True), "g3": stats("g3", "MAINT"), "old-glance": stats("old-glance")})
    r = await check(g, FakeCtx(config=make_lb_config(["old-glance"]), lb=lb))
    assert not r.ok and "leave 0 node(s)" in r.reason and "not counted: g2" in r.reason
    # a row whose bck column is unknown is not counted either (unknown is never capacity)
    lb = LBFacts({"g1": stats("g1"), "g2": stats("g2", backup=None), "g3": stats("g3", "MAINT")})
    assert not (await check(g, FakeCtx(lb=lb))).ok
    lb = LBFacts({"g1": stats("g1"), "g2": stats("g2"), "g3": stats("g3", "MAINT"), "old-glance": stats("old-glance")})
    assert (await check(g, FakeCtx(config=make_lb_config(["old-glance"]), lb=lb))).ok
