"""The lab's import parts without a running Glance: the slow web-download server (real sockets,
real pacing), the node config Glance reads for imports (and, ``-m lab``, every release's own Glance
reading it), the import report and its judge, and the CLI's checks (--naive with import, --imports)."""

from __future__ import annotations

import configparser
import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from glance_tui.cli import main
from glance_tui.lab import envs, glance
from glance_tui.lab.hazards import NAIVE_SCENARIOS, SCENARIOS
from glance_tui.lab.imports import ImportOutcome
from glance_tui.lab.load import LoadReport
from glance_tui.lab.rehearse import ProcedureReport, _judge, _judge_imports, report_text
from glance_tui.lab.slowserve import BLOCK, SlowHandler, SlowServer, blob_chunks, blob_digests, blob_url


@pytest.fixture()
def server():
    srv = SlowServer(("127.0.0.1", 0), SlowHandler)
    srv.RequestHandlerClass.log_message = lambda *a: None  # quiet in tests
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_blob_is_reproducible_and_its_digests_known_in_advance() -> None:
    size = 3 * BLOCK + 123
    data = b"".join(blob_chunks("s1", size))
    assert len(data) == size and data == b"".join(blob_chunks("s1", size))
    assert data != b"".join(blob_chunks("s2", size))
    assert blob_digests("s1", size) == (hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())


def test_slow_server_serves_the_blob_at_the_rate_asked(server: str) -> None:
    size, rate = 256 * 1024, 128 * 1024  # 2 s
    started = time.monotonic()
    resp = httpx.get(blob_url(server, "rate", size, rate), timeout=30)
    took = time.monotonic() - started
    assert resp.status_code == 200 and resp.headers["content-length"] == str(size)
    assert (hashlib.md5(resp.content).hexdigest(), hashlib.sha512(resp.content).hexdigest()) == blob_digests("rate", size)
    print(f"\n{size} bytes at {rate} B/s took {took:.2f}s (expected ~{size / rate:.1f}s)")
    assert took >= size / rate  # paced: the last byte leaves no sooner than size / rate


@pytest.mark.parametrize("path", ["/", "/blob/x/0/10", "/blob/x/10/0", "/blob/../10/10", "/blob/x/10", f"/blob/x/{65 * 1024 ** 3}/1"])
def test_slow_server_refuses_what_it_does_not_serve(server: str, path: str) -> None:
    resp = httpx.get(server + path, timeout=10)
    assert resp.status_code == 404 and b"/blob/" in resp.content


def test_node_conf_enables_distributed_import_and_web_download_from_the_lab_server(tmp_path: Path) -> None:
    text = glance.api_conf(host="127.0.0.11", port=9292, database="mysql+pymysql://x", store_dir=tmp_path / "images",
                           node_dir=tmp_path / "n1", web_source=("127.0.0.6", 41234))
    conf = configparser.ConfigParser(interpolation=None)
    conf.read_string(text)
    assert conf["DEFAULT"]["worker_self_reference_url"] == "http://127.0.0.11:9292"
    assert conf["DEFAULT"]["enabled_import_methods"] == "[glance-direct, web-download, copy-image]"
    assert conf["os_glance_staging_store"]["filesystem_store_datadir"] == str(tmp_path / "n1" / "staging")
    assert conf["DEFAULT"]["node_staging_uri"] == f"file://{tmp_path / 'n1' / 'staging'}"
    assert dict(conf["import_filtering_opts"]) == {**conf.defaults(), "allowed_schemes": "[http]", "allowed_hosts": "[127.0.0.6]",
                                                   "allowed_ports": "[41234]"}
    without = glance.api_conf(host="127.0.0.11", port=9292, database="x", store_dir=tmp_path, node_dir=tmp_path)
    assert "[import_filtering_opts]" not in without  # no server, Glance's defaults


def outcome(method: str, status: str, match: bool, node: str = "glance-1", **kw) -> ImportOutcome:
    return ImportOutcome(f"img-{method}-{status}", method, node, "m", "s", status=status, checksum_match=match, **kw)


def test_report_lists_every_import_and_fails_on_a_stuck_or_wrong_one() -> None:
    drain_ts = 1000.0
    records = [{"ts": drain_ts, "event": "lb", "action": "drain", "node": "glance-1"}]
    web = outcome("web-download", "active", True, requested=drain_ts - 5, settled=drain_ts + 20)
    staged = outcome("glance-direct", "active", True, node="glance-3", requested=drain_ts + 60, settled=drain_ts + 61)
    load = LoadReport(url="lb", clients=2, imports=[outcome("glance-direct", "active", True, node="glance-2").to_json()])
    good = ProcedureReport("drain", True, 10.0, scenario="import")
    _judge(good, load, [])
    _judge_imports(good, [web, staged], records)
    assert [(i["method"], i["node"], i["status"], i["checksum_match"]) for i in good.imports] == [
        ("web-download", "glance-1", "active", True), ("glance-direct", "glance-3", "active", True),
        ("glance-direct", "glance-2", "active", True)]
    assert {"image", "method", "node", "status", "checksum_match"} <= set(good.imports[0])
    assert good.imports[0]["seconds"] == 25.0
    assert not any("import" in p for p in good.problems), good.problems
    assert "3/3" in report_text([good])

    stuck = outcome("web-download", "importing", False, requested=drain_ts - 5)
    wrong = outcome("glance-direct", "active", False, node="glance-3", requested=drain_ts + 60, settled=drain_ts + 61)
    naive = ProcedureReport("naive", True, 10.0, scenario="import")
    _judge(naive, LoadReport(url="lb", clients=2), [])
    _judge_imports(naive, [stuck, wrong], [])
    assert any("2 of 2 import(s) did not end active" in p for p in naive.problems), naive.problems
    text = report_text([good, naive])
    assert "import naive" in text and "0/2" in text and "importing" in text and "checksum differs" in text


def test_the_hazard_must_overlap_the_new_nodes_drain() -> None:
    records = [{"ts": 1000.0, "event": "lb", "action": "drain", "node": "glance-1"}]
    done_before = outcome("web-download", "active", True, requested=990.0, settled=999.0)
    report = ProcedureReport("drain", True, 10.0, scenario="import")
    _judge(report, LoadReport(url="lb", clients=1), [])
    _judge_imports(report, [done_before], records)
    assert any("not exercised" in p for p in report.problems), report.problems


def test_naive_is_allowed_with_import_only_among_the_hazards(capsys) -> None:
    assert "import" in SCENARIOS and NAIVE_SCENARIOS == {"default", "import"}
    assert main(["lab", "rehearse", "--scenario", "failover", "--naive", "--dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --naive runs only with the scenarios default, import")


@pytest.mark.parametrize("command", [["load", "--url", "http://127.0.0.1:9"], ["rehearse", "--dir", "/nonexistent"]])
@pytest.mark.parametrize("share", ["1", "-0.1", "nan"])
def test_load_and_rehearse_refuse_an_import_share_outside_0_1(capsys, share: str, command: list[str]) -> None:
    assert main(["lab", command[0], "--imports", share, *command[1:]]) == 2
    assert capsys.readouterr().err.startswith(f"error: --imports {float(share):g} is not a share between 0 and 1")


# Read the node's conf with the release's own Glance and oslo.config: the options exist under these
# names and parse (a list option Glance declares bounds=True must be in brackets), and the lab's
# server is a URL Glance's web-download filter lets through while another port is refused.
READ_WITH_GLANCE = """
import json, sys
from oslo_config import cfg
import glance.common.config, glance.common.utils as u
cfg.CONF([], project="glance", default_config_files=[sys.argv[1]])
f = cfg.CONF.import_filtering_opts
def allowed(uri):
    if hasattr(u, "get_validated_address"):  # 2026.2: resolves and pins the address, loopback only when allowed_hosts names it
        try:
            return bool(u.get_validated_address(uri))
        except ValueError:
            return False
    return u.validate_import_uri(uri)
print(json.dumps({"methods": cfg.CONF.enabled_import_methods, "self": cfg.CONF.worker_self_reference_url,
                  "filter": [f.allowed_schemes, f.allowed_hosts, f.allowed_ports],
                  "ok": allowed(sys.argv[2]), "other_port": allowed(sys.argv[3])}))
"""


@pytest.mark.lab
@pytest.mark.parametrize("release", sorted(envs.RELEASES))
def test_every_release_reads_the_import_options_of_a_lab_node(tmp_path: Path, release: str) -> None:
    bin_dir = envs.ensure_env(release, progress=lambda line: None)
    conf = tmp_path / "glance-api.conf"
    conf.write_text(glance.api_conf(host="127.0.0.11", port=9292, database="mysql+pymysql://x", store_dir=tmp_path / "images",
                                    node_dir=tmp_path / "n1", web_source=("127.0.0.6", 41234)))
    out = subprocess.run([str(bin_dir / "python"), "-W", "ignore", "-c", READ_WITH_GLANCE, str(conf),
                          blob_url("http://127.0.0.6:41234", "x", 1, 1), blob_url("http://127.0.0.6:41235", "x", 1, 1)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "methods": ["glance-direct", "web-download", "copy-image"], "self": "http://127.0.0.11:9292",
        "filter": [["http"], ["127.0.0.6"], [41234]], "ok": True, "other_port": False}


@pytest.mark.parametrize("share, ops, imports", [(0.5, 8, 4), (0.05, 40, 2), (1.0, 3, 3), (0.0, 10, 0), (0.3, 10, 3)])
def test_the_load_imports_exactly_its_share_and_takes_turns_between_methods(share: float, ops: int, imports: int) -> None:
    """Imports are counted, not rolled: a short run at 0.5 once drew glance-direct only, and the
    lab test meant to prove web-download proved nothing about it."""
    from glance_tui.lab.load import ImportMix, Targets, _Run

    run = _Run(Targets("http://127.0.0.1:1"), clients=3, sizes=(1,), upload_rate=None, token=None,
               mix=ImportMix(share, "http://127.0.0.1:2"))
    chosen = [run._next_import().__name__ for _ in range(ops) if run._next_is_import()]
    assert len(chosen) == imports
    assert chosen == ["glance_direct", "web_download"] * (imports // 2) + ["glance_direct"] * (imports % 2)
    alone = _Run(Targets("http://127.0.0.1:1"), clients=1, sizes=(1,), upload_rate=None, token=None, mix=ImportMix(1.0))
    assert {alone._next_import().__name__ for _ in range(4)} == {"glance_direct"}  # no web source: glance-direct only


def test_the_load_mix_is_counted_with_an_upload_first() -> None:
    """list / upload / download are counted, not rolled (3 : 3 : 4): a short lab run once could draw
    no upload, or no download, and prove nothing about it."""
    from glance_tui.lab.load import MIX, Targets, _Run

    run = _Run(Targets("http://127.0.0.1:1"), clients=4, sizes=(1,), upload_rate=None, token=None)
    kinds = [run._next_other().__name__ for _ in range(3 * len(MIX))]
    assert kinds[0] == "create_and_upload" and kinds[:len(MIX)] == kinds[len(MIX):2 * len(MIX)]
    assert [kinds.count(k) for k in ("list_images", "create_and_upload", "download")] == [9, 9, 12]


async def test_a_download_waits_for_the_upload_under_way_rather_than_find_nothing() -> None:
    """A download that comes before the first upload ended waits for it (it used to turn into a
    list, and a short run downloaded nothing); with no upload under way it does not wait."""
    import asyncio

    from glance_tui.lab.load import Targets, _Image, _Run

    run = _Run(Targets("http://127.0.0.1:1"), clients=2, sizes=(1,), upload_rate=None, token=None)
    assert await asyncio.wait_for(run.uploaded(), 5) == []  # nothing under way: nothing to wait for
    run.uploading = 1
    waiting = asyncio.create_task(run.uploaded())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    image = run.images["i"] = _Image("i", 1, "md5", "sha512", uploaded=True)
    run.uploading = 0
    run.upload_ended.set()
    assert await asyncio.wait_for(waiting, 30) == [image]
