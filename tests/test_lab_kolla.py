"""Rehearsals on the container lab (``--node-kind kolla``): each node's real Glance in a podman
container of its release's image, driven by the kolla kind's own commands (pull, re-create from
the container's inspected configuration, glance-manage in a one-off container), under load.

``stale-image`` (``-m lab``, CI): before the run every node's new image is pulled under the target
tag and its container restarted — still on the old image. The tool must re-create every container
on the new image before contract (or refuse with a reason): the witness reads each container's
image from podman's own storage, not from the tool. A rollback of the upgraded NEW NODE (CI too)
re-creates its container on the image it ran before. The default procedure on containers is
``-m lab_extra``. Its own lab directory and free ports on 127.0.6.x.
"""

from __future__ import annotations

import shutil

import pytest

from glance_tui.lab import containers
from glance_tui.lab.envs import DEFAULT_PATH, GLANCE_VERSIONS
from glance_tui.lab.lab import Lab
from glance_tui.lab.rehearse import ProcedureReport, rehearse
from tests.test_rehearsal import check

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def kolla_lab(tmp_path_factory):
    if not shutil.which("podman"):
        pytest.skip("podman and runc are not installed (apt-get install -y podman runc): no container lab here")
    lab = Lab(tmp_path_factory.mktemp("kolla-lab"), nodes=3, ip_base="127.0.6.", api_port=0, frontend_port=0, external_port=0,
              stats_port=0, runtime_tcp_port=0, ssh_port=0, db_port=0, keystone_port=0, node_kind="kolla", path=DEFAULT_PATH,
              progress=print)
    try:
        yield lab
    finally:
        lab.down()


def check_containers(lab: Lab, report: ProcedureReport) -> None:
    """Every glance_api was created from the target image, by podman's own account and by `lab status`."""
    target = lab.images().recorded()[report.target]
    assert report.witness["containers"] == {n: {"image": target, "status": "running", "target": True}
                                            for n in ("glance-1", "glance-2", "glance-3")}
    spans = [s for s in report.witness["processes"] if s["release"] == report.target]
    assert spans and all(s["image"] == target for s in spans), "the new code ran from the new image only"
    status = lab.status()
    assert status["node_kind"] == "kolla"
    assert {(n["release"], n["image"], n["container"]) for n in status["nodes"]} == {(report.target, target[:12], "running")}


async def test_stale_images_are_recreated_before_contract(kolla_lab: Lab) -> None:
    report = await rehearse(kolla_lab, naive=False, scenario="stale-image", clients=6)
    check(report)
    assert any(f"restarted {containers.CONTAINER}" in h for h in report.hazard)
    check_containers(kolla_lab, report)
    base = kolla_lab.images().recorded()[DEFAULT_PATH[0]]
    # before the tool re-created it, each node served the old image's code (the hazard took)
    assert {s["node"] for s in report.witness["processes"] if s["image"] == base and s["release"] == DEFAULT_PATH[0]} == \
        {"glance-1", "glance-2", "glance-3"}


@pytest.mark.lab_extra
async def test_default_rehearsal_on_containers(kolla_lab: Lab) -> None:
    report = await rehearse(kolla_lab, naive=False, clients=6)
    check(report)
    assert set(report.node_versions.values()) == {GLANCE_VERSIONS[DEFAULT_PATH[1]]}
    check_containers(kolla_lab, report)


async def test_a_rollback_recreates_the_container_on_the_image_it_ran_before(kolla_lab: Lab, tmp_path, monkeypatch) -> None:
    """Until contract a Kolla node rolls back with no `rollback` written: the NEW NODE, upgraded
    (its container re-created on the target image), is re-created on the image id it ran before —
    the one the upgrade journaled — started, and put back in rotation, serving the old code."""
    from glance_tui.config import load_config
    from glance_tui.engine import Engine
    from glance_tui.journal import read_records
    from glance_tui.operator import Unattended
    from glance_tui.plan import ActionIO

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    kolla_lab.reset()
    images = kolla_lab.images().recorded()
    base, target = images[DEFAULT_PATH[0]], images[DEFAULT_PATH[1]]
    engine = Engine.open(load_config(kolla_lab.config_path), resume=False)
    operator = Unattended("glance-1")
    try:
        for step in ("preflight", "backup", "new-node", "upgrade-new"):
            assert await engine.run_step(engine.plan.step(step), operator) == "done", step
        assert engine.ctx.state.prior_images == {"glance-1": base}
        assert {n["name"]: n["image"] for n in kolla_lab.status()["nodes"]}["glance-1"] == target[:12]
        assert engine._can_rollback(engine.plan.step("upgrade-new").actions[0])
        await engine._rollback("glance-1", ActionIO(operator))
        facts = await engine.cluster.probe_node("glance-1")
        views = (await engine.cluster.probe_lb()).views
    finally:
        await engine.close()
    records = list(read_records(engine.journal.path))
    assert [r["ok"] for r in records if r["event"] == "rollback.end"] == [True], [r for r in records if r["event"].startswith("rollback")]
    assert facts.running and facts.version == GLANCE_VERSIONS[DEFAULT_PATH[0]]
    assert views["glance-1"].in_rotation is True
    node = {n["name"]: n for n in kolla_lab.status()["nodes"]}["glance-1"]
    assert (node["image"], node["container"]) == (base[:12], "running")
