"""Rehearsals on the container lab (``--node-kind kolla``): each node's real Glance in a podman
container of its release's image, driven by the kolla kind's own commands (pull, re-create from
the container's inspected configuration, glance-manage in a one-off container), under load.

``stale-image`` (``-m lab``, CI): before the run every node's new image is pulled under the target
tag and its container restarted — still on the old image. The tool must re-create every container
on the new image before contract (or refuse with a reason): the witness reads each container's
image from podman's own storage, not from the tool. The default procedure on containers is
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
