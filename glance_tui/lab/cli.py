"""``glance-tui lab up|down|status|reset|load``: the staging lab from the command line.

Each sub-command sets ``lab_handler`` (the main CLI calls it). Expected failures print one
``error: …`` line and return 2 (usage) or 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from glance_tui.errors import GlanceTuiError, UsageError


def _lab(args: argparse.Namespace, **kwargs):
    from glance_tui.lab.envs import check_path
    from glance_tui.lab.lab import Lab

    start, target = getattr(args, "from_release", None), getattr(args, "to_release", None)
    path = check_path(start, target) if start or target else None
    return Lab(args.dir, progress=lambda line: print(line, flush=True), path=path, node_kind=getattr(args, "node_kind", None), **kwargs)


def _guard(handler):
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except GlanceTuiError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return exc.exit_code
    return run


def cmd_up(args: argparse.Namespace) -> int:
    lab = _lab(args, nodes=args.nodes, autostart=args.autostart)
    lab.up()
    print(status_text(lab.status()))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = _lab(args).down()
    print("stopped: " + ", ".join(stopped) if stopped else "nothing of the lab was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _lab(args).status()
    print(json.dumps(status, indent=2) if args.json else status_text(status))
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    lab = _lab(args)
    lab.reset(up=not args.no_up)
    print(status_text(lab.status()))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from glance_tui.lab.load import DEFAULT_SIZES, ImportMix, check_load, parse_rate, parse_size, run_load, write_json
    from glance_tui.outfile import check_output

    sizes = [parse_size(s) for s in args.size] if args.size else list(DEFAULT_SIZES)
    rate = parse_rate(args.upload_rate) if args.upload_rate is not None else None
    check_load(clients=args.clients, duration=args.duration, sizes=sizes, max_requests=args.max_requests, import_share=args.imports,
               urls=[args.url] if args.url is not None else [])
    if args.json is not None:  # before the load: its report must have somewhere to go
        check_output(args.json, where="--json")
    urls, token, web = [args.url] if args.url else [], None, None
    if not urls:
        lab = _lab(args)
        status = lab.status()
        if not status.get("created") or not all(lb["running"] for lb in status["haproxies"]):
            raise GlanceTuiError("the lab is not running", where=status["dir"], fix="run `glance-tui lab up` (or pass --url)")
        urls = [url for lb in status["haproxies"] for url in lb["frontends"].values()]
        token = lab.token()
        web = (status.get("web") or {}).get("url")
    url = ", ".join(urls)
    print(f"load: {args.clients} clients for {args.duration:.0f}s through {url} (Ctrl-C stops early)", flush=True)

    async def load():
        stop = asyncio.Event()  # Ctrl-C: let in-flight requests finish, then report
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        return await run_load(urls, clients=args.clients, duration=args.duration, sizes=sizes, stop_event=stop, token=token,
                              max_requests=args.max_requests, upload_rate=rate, cleanup=not args.keep_images,
                              imports=ImportMix(args.imports, web) if args.imports else None)

    report = asyncio.run(load())
    print(report.summary())
    if args.json:
        write_json(report, args.json)
        print(f"report written to {args.json}")
    return 0 if report.ok else 1


def cmd_rehearse(args: argparse.Namespace) -> int:
    from pathlib import Path

    from glance_tui.lab.load import check_load, parse_rate, parse_size
    from glance_tui.lab.rehearse import REHEARSAL_LOAD_SECONDS, SCENARIO_IMPORTS, check_kind, rehearse, report_text, scenario_names, write_reports

    from glance_tui.lab.hazards import NAIVE_SCENARIOS
    from glance_tui.outfile import check_output

    scenario_names(args.scenario)  # a bad name is refused before the lab is read
    lab = _lab(args)
    layout = lab.load_layout()
    names = scenario_names(args.scenario, lab.requested_kind or (layout.node_kind if layout else "packages"))
    if args.naive and not set(names) <= NAIVE_SCENARIOS:
        raise UsageError(f"--naive runs only with the scenarios {', '.join(sorted(NAIVE_SCENARIOS))}",
                         fix="drop --naive, or use one of those scenarios")
    for name in names:  # before the first rehearsal, not after it
        check_kind(lab, name, args.naive)
    sizes = tuple(parse_size(s) for s in args.size) if args.size else (256 * 1024, 1024 * 1024, 2 * 1024 * 1024)
    rate = parse_rate(args.upload_rate) if args.upload_rate is not None else None
    check_load(clients=args.clients, duration=REHEARSAL_LOAD_SECONDS, sizes=sizes, import_share=args.imports or 0.0)
    if args.json is not None:  # before the lab is reset: the report must have somewhere to go
        if len(names) > 1:
            raise UsageError(f"--json names one file, and --scenario {args.scenario} writes {len(names)} reports",
                             fix=f"drop --json (each report goes to {lab.dir}/rehearsal-NAME.json), or name one scenario")
        check_output(args.json, where="--json")

    async def each():
        reports = []
        for name in names:
            share = args.imports if args.imports is not None else SCENARIO_IMPORTS.get(name, 0.0)
            kw = dict(clients=args.clients, sizes=sizes, upload_rate=rate, verbose=args.verbose, import_share=share)
            report = await rehearse(lab, naive=False, scenario=name, **kw)
            reports.append(report)
            path = Path(args.json) if args.json and len(names) == 1 else lab.dir / f"rehearsal-{name}.json"
            runs = [report]
            if args.naive:
                runs.append(await rehearse(lab, naive=True, scenario=name, **kw))
                reports.append(runs[-1])
            write_reports(runs, path)
            print(f"report for {name} written to {path}", flush=True)
        return reports

    reports = asyncio.run(each())
    print()
    print(report_text(reports))
    failed = [r.scenario for r in reports if r.mode == "drain" and not r.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def status_text(status: dict) -> str:
    if not status.get("created"):
        return f"no lab in {status['dir']} (run `glance-tui lab up`)"
    up = lambda flag: "running" if flag else "stopped"  # noqa: E731
    db = status["mariadb"]
    path = status.get("path") or {}
    lines = [
        f"lab {status['dir']}",
        f"  path      {path.get('from')} -> {path.get('to')}  (Glance "
        + " -> ".join(f"{v} {r}" for v, r in zip(path.get("versions", []), path.get("runtimes", []))) + ")",
        f"  MariaDB   {db['address']:<24} {up(db['running'])}",
    ]
    if status.get("keystone"):
        lines.append(f"  Keystone  {status['keystone']['url']:<24} {up(status['keystone']['running'])}")
    for lb in status["haproxies"]:
        fronts = "  ".join(f"{backend} {url}" for backend, url in lb["frontends"].items())
        lines.append(f"  HAProxy {lb['name']:<5} {up(lb['running'])}  {fronts}  stats {lb['stats_url']}  runtime {lb['runtime_socket']}")
    for n in status["nodes"]:
        box = f"  container {n['container']} image {n.get('image_name') or '?'} {n['image'] or ''}" if "container" in n else ""
        lines.append(f"  {n['name']:<9} {n['api_url']:<24} {up(n['running'])}  Glance {n['release']} ({n['version']}, {n.get('runtime')})"
                     f"{box}  ssh {n['ssh']} {up(n['sshd_running'])}")
    if status.get("web"):
        lines.append(f"  web       {status['web']['url']:<24} {up(status['web']['running'])}  (web-download source, slow by design)")
    if status.get("autostart"):
        lines.append("  autostart a node's upgrade starts its service (as a Debian/Ubuntu postinst does)")
    lines.append(f"  config    glance-tui -c {status['config']}")
    return "\n".join(lines)


def add_lab_parser(subparsers) -> None:
    """Add ``lab`` and its sub-commands to the main CLI's sub-parsers."""
    from glance_tui.lab.envs import NODE_KINDS, PATHS

    lab = subparsers.add_parser("lab", help="a real Glance cluster on this machine for rehearsals (staging lab)")
    lab.set_defaults(lab_handler=lambda args: (lab.print_help(), 2)[1])
    sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", parser_class=type(lab))

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--dir", metavar="D", default=None, help="lab directory (default $XDG_STATE_HOME/glance-tui/lab)")
        p.set_defaults(lab_handler=_guard(handler))
        return p

    def path_options(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--from", dest="from_release", metavar="RELEASE", default=None,
                       help=f"the upgrade path's starting release ({', '.join(a for a, _ in PATHS)}); {what}")
        p.add_argument("--to", dest="to_release", metavar="RELEASE", default=None,
                       help=f"the path's target release ({', '.join(b for _, b in PATHS)})")
        p.add_argument("--node-kind", choices=NODE_KINDS, default=None,
                       help="how each node runs Glance: packages (a service, as a packaged node) or kolla (a podman container "
                            "of the release's image, as Kolla-Ansible); default: the existing lab's, else packages")

    paths = ", ".join(f"{a} -> {b}" for a, b in PATHS)
    p = command("up", cmd_up, f"start the lab (idempotent; the first run installs the path's Glance environments). Paths: {paths}")
    path_options(p, f"default: the existing lab's path, else {PATHS[0][0]} -> {PATHS[0][1]}")
    p.add_argument("--nodes", type=int, default=None, metavar="N", help="number of glance-api nodes (default 3)")
    p.add_argument("--autostart", action=argparse.BooleanOptionalAction, default=None,
                   help="a node's upgrade starts its service, as a Debian/Ubuntu postinst does (default: as before, else off)")
    command("down", cmd_down, "stop everything the lab started")
    p = command("status", cmd_status, "what runs where, and each node's release")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("reset", cmd_reset, "all nodes back on the path's starting release, a fresh database and file store")
    path_options(p, "another path than the lab's moves the lab to it")
    p.add_argument("--no-up", action="store_true", help="leave the lab stopped after the reset")
    p = command("load", cmd_load, "drive image traffic through HAProxy and verify every byte")
    p.add_argument("--url", help="the Glance endpoint (default: every frontend of the lab's HAProxy instances, with a Keystone token)")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--size", action="append", metavar="SIZE", help="image size, e.g. 64K or 4M; repeat for a mix (default 64K 1M 4M)")
    p.add_argument("--upload-rate", default="4M", metavar="RATE", help="bytes/s per upload, e.g. 2M; 0 = unthrottled (default 4M)")
    p.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests (default 100000)")
    p.add_argument("--keep-images", action="store_true", help="do not delete the verified images afterwards")
    p.add_argument("--imports", type=float, default=0.2, metavar="SHARE",
                   help="share of the requests that are image imports, glance-direct and web-download from the lab's "
                        "slow server (default 0.2; 0 = none)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p = command("rehearse", cmd_rehearse, "reset the lab and run the whole upgrade unattended under load, with a hazard; report")
    path_options(p, "default: the lab's path (another one moves the lab to it)")
    p.add_argument("--scenario", default="default", metavar="NAME",
                   help="default, prestaged, autostart, failover, stats-outage, long-request, lb-reload, import, stale-image (kolla nodes), "
                        "or all (each with its own report)")
    p.add_argument("--naive", action="store_true",
                   help="also run the no-drain restart procedure under the same load (and, with import, the same imports), side by side")
    p.add_argument("--clients", type=int, default=8, help="concurrent load clients (default 8)")
    p.add_argument("--size", action="append", metavar="SIZE", help="image size; repeat for a mix (default 256K 1M 2M)")
    p.add_argument("--upload-rate", default="1M", metavar="RATE", help="bytes/s per upload, so drains have to wait (default 1M)")
    p.add_argument("--imports", type=float, default=None, metavar="SHARE",
                   help="share of the load's requests that are image imports (default 0.05 for the import scenario, "
                        "else 0; an import whose node cannot be told from its staging file holds every node's drain)")
    p.add_argument("--verbose", action="store_true", help="print every command's output")
    p.add_argument("--json", metavar="FILE", help="where to write the JSON report of one scenario (default <lab dir>/rehearsal-NAME.json)")
