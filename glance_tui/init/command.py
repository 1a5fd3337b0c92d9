"""``glance-tui init``: the command line's checks, then discover, render, and write (never over a file without --force)."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import stat
import sys
from pathlib import Path

from glance_tui.config import DEFAULT_CONFIG, DatabaseConfig, LoadBalancerConfig, SSHConfig
from glance_tui.errors import UsageError, one_line
from glance_tui.init.discover import InitOptions, StatsAuth, discover, invalid
from glance_tui.init.render import render
from glance_tui.releases import RELEASES
from glance_tui.secrets import SecretProblem, env_value, read_secret


def options_from(args: argparse.Namespace) -> InitOptions:
    """The flags checked as the config will check them, each problem one line naming the flag."""
    if not 1 <= args.ssh_port <= 65535:
        raise UsageError(f"--ssh-port {args.ssh_port} is not from 1 to 65535", where="init", fix="give the nodes' SSH port")
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= 300):
        raise UsageError(f"--timeout {args.timeout:g} is not from 0 to 300 seconds", where="init", fix="give e.g. --timeout 5")
    if args.target_release is not None and args.target_release not in RELEASES:
        raise UsageError(f"--target-release {args.target_release!r} is not a release this tool knows", where="init",
                         fix=f"use one of: {', '.join(RELEASES)}")
    if args.stats_user and args.stats_user_env:
        raise UsageError("both --stats-user and --stats-user-env", where="init", fix="give one of them")
    if args.stats_password_env and args.stats_password_file:
        raise UsageError("both --stats-password-env and --stats-password-file", where="init", fix="give one of them")
    has_user = bool(args.stats_user or args.stats_user_env)
    has_password = bool(args.stats_password_env or args.stats_password_file)
    if has_user != has_password:
        raise UsageError("stats basic auth needs a user and a password", where="init",
                         fix="give --stats-user (or --stats-user-env) and --stats-password-env (or --stats-password-file), or neither")
    auth = StatsAuth(args.stats_user, args.stats_user_env, args.stats_password_env, args.stats_password_file)
    secret = None
    if has_user:
        try:
            user = args.stats_user or env_value(args.stats_user_env, "stats user", "--stats-user-env")
            secret = (user, read_secret(env=args.stats_password_env, file=args.stats_password_file, what="stats password", key="--stats-password"))
        except SecretProblem as exc:
            raise UsageError(str(exc), where="init", fix=exc.fix) from None
    if len(set(args.stats_url)) != len(args.stats_url):
        raise UsageError("a --stats-url is given twice", where="init", fix="give each HAProxy instance's stats page once")
    checks = ((SSHConfig, {"user": args.ssh_user, "identity_file": args.identity_file, "known_hosts": args.known_hosts}, "--ssh-user/--identity-file/--known-hosts"),
              (DatabaseConfig, {"password_file": args.db_password_file or "unset", "password_env": None}, "--db-password-file"),
              (LoadBalancerConfig, {"stats_url": "http://lb/stats", "backend": "b", "username": args.stats_user, "username_env": args.stats_user_env,
                                    "password_env": args.stats_password_env, "password_file": args.stats_password_file}, "the --stats-* flags"))
    for model, values, flags in checks:
        problem = invalid(model, {k: v for k, v in values.items() if v is not None})
        if problem:
            raise UsageError(f"{flags}: {problem}", where="init", fix="correct the flag (the config would refuse the value)")
    return InitOptions(
        stats_urls=args.stats_url, runtime_sockets=args.runtime_socket, stats_auth=auth, stats_secret=secret,
        ssh_user=args.ssh_user, ssh_port=args.ssh_port, sudo=args.sudo, identity_file=args.identity_file, known_hosts=args.known_hosts,
        db_password_file=args.db_password_file, target_release=args.target_release, timeout=args.timeout,
    )


def check_flag_files(args: argparse.Namespace) -> None:
    """The files the flags name, read as ``check`` and ``run`` will read them (blocking: run it in a thread).

    A bad key or known_hosts file is the flag's problem, one line now — not an SSH failure of every
    node, asked about as if the nodes were not Glance, after minutes of probing."""
    from glance_tui.adapters.known_hosts import KnownHostsIndex
    from glance_tui.adapters.ssh import IdentityProblem, load_identity
    from glance_tui.files import FileProblem

    for flag in ("--identity-file", "--known-hosts", "--db-password-file", "--stats-password-file"):
        if getattr(args, flag[2:].replace("-", "_")) == "":  # Path("") is the current directory: name the flag instead
            raise UsageError(f"{flag} '' names no file", where="init", fix=f"give {flag} a file, or leave the flag out")
    if args.identity_file is not None:
        try:
            load_identity(Path(args.identity_file).expanduser(), key="--identity-file")
        except IdentityProblem as exc:
            raise UsageError(exc.what, where="init --identity-file", fix=exc.fix) from None
    try:
        KnownHostsIndex.read(Path(args.known_hosts).expanduser())  # a missing file is fine: each node's key is then unknown
    except FileProblem as exc:
        raise UsageError(str(exc), where="init --known-hosts", fix="give --known-hosts the regular file that holds the nodes' host keys") from None
    if args.db_password_file is not None:  # the config will name it: it must hold a password the config accepts
        try:
            read_secret(env=None, file=args.db_password_file, what="database password", key="--db-password")
        except SecretProblem as exc:
            raise UsageError(str(exc), where="init", fix=exc.fix) from None


def refuse_overwrite(output: str, force: bool) -> None:
    """An existing regular file (or a link to one) is replaced only with --force; streams and devices are written as a redirect would."""
    if output == "-" or force:
        return
    try:
        info = os.stat(Path(output).expanduser())
    except FileNotFoundError:
        return
    except OSError:
        return  # write_output names the problem
    if stat.S_ISREG(info.st_mode):
        raise UsageError(f"{output} already exists", where="init -o", fix="choose another file with -o, or add --force to replace it")


async def cmd_init(args: argparse.Namespace) -> int:
    from glance_tui.outfile import check_output, write_output

    output = str(DEFAULT_CONFIG) if args.output is None else args.output
    options = options_from(args)
    await asyncio.to_thread(check_flag_files, args)
    # before minutes of probing; a file another flag reads is never replaced, even with --force
    inputs = {f"the file {flag} names": getattr(args, flag[2:].replace("-", "_"))
              for flag in ("--identity-file", "--known-hosts", "--db-password-file", "--stats-password-file")}
    check_output(output, where="init -o", inputs=inputs)
    refuse_overwrite(output, args.force)
    found = await discover(options)
    text, questions = render(found)
    refuse_overwrite(output, args.force)  # ... and again right before the write
    written = write_output(output, text, where="init -o", inputs=inputs)
    shown = one_line(str(written)) if written is not None else ""  # a path is the operator's text: one line, escapes shown
    where = one_line(shlex.quote(str(written))) if written is not None else ""  # ... and the command line copies as it runs
    ask = (f"{questions} question{'s' if questions != 1 else ''} to answer before `check` (lines starting with `# QUESTION:`"
           + ("; the target release is one: the file does not load until it is answered" if found.target.value is None else "") + ")"
           if questions else "no question")
    then = "answer them, then " if questions else ""
    print(f"written: {shown} ({len(found.nodes)} node{'s' if len(found.nodes) != 1 else ''}, {ask}); next: {then}glance-tui -c {where} check"
          if written is not None else f"init: {ask}", file=sys.stderr)
    return 0
