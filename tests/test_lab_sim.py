"""The production-shaped layout on the simulated cluster (real MariaDB, HAProxy ×2, sshd; sim Glance):
two instances with an internal and an external backend each, written to the config, checked by
the tool's own preflight, and the LB state reader of the rehearsals over all four places."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.lab.hazards import lb_states
from glance_tui.lab.lab import SERVED_BY
from tests.fixtures.cluster import make_sim_lab

pytestmark = pytest.mark.services


def test_two_instances_two_backends_on_the_sim(tmp_path: Path, sim_envs, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    lab = make_sim_lab(tmp_path / "lab", sim_envs, ip_base="127.0.7.", second_lb=True)
    try:
        layout = lab.up()
        assert [b.name for b in layout.balancers] == ["lb-a", "lb-b"] and layout.keystone_url is None
        config = load_config(lab.config_path)
        assert [(lb.name, lb.backends) for lb in config.lbs] == [("lb-a", ["glance_api", "glance_api_external"]),
                                                                ("lb-b", ["glance_api", "glance_api_external"])]
        assert len(layout.frontend_urls) == 4
        served = set()
        for url in layout.frontend_urls:
            for _ in range(3):
                resp = httpx.get(f"{url}/v2/images", timeout=10)
                assert resp.status_code == 200  # the simulated Glance has no Keystone
                served.add(resp.headers[SERVED_BY])
        assert served <= {"glance-1", "glance-2", "glance-3"} and served
        states = lb_states({b.name: lb.stats_url for b, lb in zip(layout.balancers, lab.haproxies(layout))},
                           ["glance_api", "glance_api_external"])
        assert {node: sorted(places) for node, places in states.items()} == {
            f"glance-{i}": ["lb-a/glance_api", "lb-a/glance_api_external", "lb-b/glance_api", "lb-b/glance_api_external"]
            for i in (1, 2, 3)}
        assert main(["check", "-c", str(lab.config_path)]) == 0, capsys.readouterr().out  # the tool's preflight accepts it
    finally:
        stopped = lab.down()
    assert {"haproxy lb-a", "haproxy lb-b", "mariadb"} <= set(stopped)
