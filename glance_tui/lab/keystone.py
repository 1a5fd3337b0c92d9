"""A real Keystone (2023.1) for the lab, so Glance authenticates every request as in production.

Database on the lab's MariaDB, fernet tokens, ``keystone-manage bootstrap`` for the admin,
then over its own API: a ``service`` project, a ``glance`` service user with the admin role
there, and the image service with its endpoints in the catalog. Served by gunicorn from the
same constraints. keystone's oslo.config parses ``sys.argv``, so gunicorn loads a tiny WSGI
module that clears it first, and takes its options from ``GUNICORN_CMD_ARGS`` (shared/NOTES.md).
Synchronous and stdlib only, like the rest of the lab's process plumbing.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from glance_tui.errors import GlanceTuiError
from glance_tui.lab import procs

REGION = "RegionOne"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
SERVICE_PROJECT = "service"
GLANCE_USER = "glance"
DOMAIN = "Default"

WSGI_MODULE = "glance_tui_lab_keystone"
WSGI_TEXT = '''\
"""Written by glance-tui's lab: Keystone for gunicorn (keystone's oslo.config would parse gunicorn's argv)."""
import sys

sys.argv = sys.argv[:1]
from keystone.server.wsgi import initialize_public_application  # noqa: E402

application = initialize_public_application()
'''


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


@dataclass
class KeystoneLab:
    workdir: Path
    bin_dir: Path  # the Keystone environment's bin
    host: str
    port: int
    database: str  # mysql+pymysql://… URL of the keystone schema
    admin_password: str
    glance_password: str
    workers: int = 2

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.bin_dir = Path(self.bin_dir)

    conf = property(lambda self: self.workdir / "keystone.conf")
    pidfile = property(lambda self: self.workdir / "keystone.pid")
    log = property(lambda self: self.workdir / "keystone.log")
    url = property(lambda self: f"http://{self.host}:{self.port}")
    marker = property(lambda self: self.workdir / ".bootstrapped")

    # ------------------------------------------------------------------ set-up
    def write_config(self) -> None:
        keys = self.workdir / "fernet-keys"
        creds = self.workdir / "credential-keys"
        _write_private(self.conf, f"""\
# Written by glance-tui's staging lab.
[DEFAULT]
log_file = {self.log}

[database]
connection = {self.database}
max_retries = 10

[token]
provider = fernet
expiration = 14400

[fernet_tokens]
key_repository = {keys}

[credential]
key_repository = {creds}
""")
        (self.workdir / WSGI_MODULE).with_suffix(".py").write_text(WSGI_TEXT)

    def _manage(self, *args: str, timeout: float = 300) -> None:
        argv = [str(self.bin_dir / "keystone-manage"), "--config-file", str(self.conf), *args]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise GlanceTuiError(f"keystone-manage {args[0]} did not finish within {timeout:.0f}s", where=str(self.conf),
                                 fix="check that MariaDB is running") from None
        if result.returncode != 0:
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            raise GlanceTuiError(f"keystone-manage {args[0]} failed: {tail}", where=str(self.conf),
                                 fix="see the message; `glance-tui lab reset` starts from a fresh database")

    def bootstrap(self) -> None:
        """Schema, key repositories and the admin (once per database: a marker file records it)."""
        self.write_config()
        if self.marker.exists():
            return
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        self._manage("db_sync")
        self._manage("fernet_setup", "--keystone-user", user, "--keystone-group", group)
        self._manage("credential_setup", "--keystone-user", user, "--keystone-group", group)
        # ``--opt=value``: a generated password may begin with "-" (token_urlsafe), which argparse
        # reads as the next option when it is a separate argument (1 lab in 64 never bootstrapped)
        self._manage("bootstrap", f"--bootstrap-password={self.admin_password}", "--bootstrap-admin-url", self.url + "/v3",
                     "--bootstrap-public-url", self.url + "/v3", "--bootstrap-internal-url", self.url + "/v3",
                     "--bootstrap-region-id", REGION)
        self.marker.write_text("bootstrapped by glance-tui lab\n")

    # ------------------------------------------------------------------ process
    def is_running(self) -> bool:
        return procs.is_running(self.pidfile)

    def start(self, timeout: float = 60) -> None:
        if self.is_running():
            return
        procs.require_free_port(self.host, self.port, "Keystone")
        env = {
            "GUNICORN_CMD_ARGS": f"--bind {self.host}:{self.port} --workers {self.workers} --timeout 120 --chdir {self.workdir}",
            "OS_KEYSTONE_CONFIG_DIR": str(self.workdir),
            "OS_KEYSTONE_CONFIG_FILES": self.conf.name,
        }
        pid = procs.start_detached([str(self.bin_dir / "gunicorn"), f"{WSGI_MODULE}:application"], log=self.workdir / "gunicorn.log",
                                   pidfile=self.pidfile, env=env, cwd=self.workdir)
        procs.wait_for_port(self.host, self.port, timeout, pid=pid, what="Keystone (gunicorn)", log=self.workdir / "gunicorn.log")
        deadline = time.monotonic() + timeout
        while True:  # the port opens before the workers have loaded keystone
            try:
                with urllib.request.urlopen(self.url + "/v3", timeout=10) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or not procs.pid_alive(pid):
                self.stop()
                raise GlanceTuiError("Keystone does not answer GET /v3", where=self.url, fix=f"see {self.log} and {self.workdir / 'gunicorn.log'}")
            time.sleep(0.25)

    def stop(self) -> bool:
        return procs.stop_pid(self.pidfile)

    # ------------------------------------------------------------------ the API
    def _call(self, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("X-Auth-Token", token)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw) if raw else {}
            except ValueError:
                detail = {"raw": raw[:200].decode(errors="replace")}
            return exc.code, dict(exc.headers), detail

    def token(self, user: str = ADMIN_USER, password: str | None = None, project: str = ADMIN_PROJECT) -> str:
        """A project-scoped token (``X-Subject-Token``) for ``user``."""
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": DOMAIN}, "password": password or self.admin_password}}},
            "scope": {"project": {"name": project, "domain": {"name": DOMAIN}}}}}
        status, headers, detail = self._call("POST", "/v3/auth/tokens", body=body)
        token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
        if status != 201 or not token:
            raise GlanceTuiError(f"Keystone refused a token for {user} (HTTP {status})", where=self.url,
                                 fix=f"see {self.log}; `glance-tui lab reset` re-creates the users")
        return token

    def _find_or_create(self, token: str, collection: str, key: str, query: str, body: dict) -> str:
        status, _, found = self._call("GET", f"/v3/{collection}?{query}", token)
        items = found.get(collection, []) if status == 200 else []
        if items:
            return items[0]["id"]
        status, _, made = self._call("POST", f"/v3/{collection}", token, {key: body})
        if status != 201:
            raise GlanceTuiError(f"Keystone: creating {key} {body.get('name', body.get('interface', ''))} failed (HTTP {status}: {made})",
                                 where=self.url, fix=f"see {self.log}")
        return made[key]["id"]

    def register_glance(self, endpoints: dict[str, str]) -> None:
        """The ``glance`` service user (admin in project ``service``) and the image service with
        ``endpoints`` (interface -> URL) in the catalog. Idempotent."""
        token = self.token()
        status, _, domains = self._call("GET", f"/v3/domains?name={DOMAIN}", token)
        domain_id = domains["domains"][0]["id"] if status == 200 and domains.get("domains") else "default"
        project = self._find_or_create(token, "projects", "project", f"name={SERVICE_PROJECT}",
                                       {"name": SERVICE_PROJECT, "domain_id": domain_id, "description": "OpenStack services"})
        user = self._find_or_create(token, "users", "user", f"name={GLANCE_USER}",
                                    {"name": GLANCE_USER, "domain_id": domain_id, "password": self.glance_password})
        # The password may have changed since (a new lab password file): set it every time.
        self._call("PATCH", f"/v3/users/{user}", token, {"user": {"password": self.glance_password}})
        role = self._find_or_create(token, "roles", "role", "name=admin", {"name": "admin"})
        status, _, _ = self._call("PUT", f"/v3/projects/{project}/users/{user}/roles/{role}", token)
        if status not in (200, 201, 204):
            raise GlanceTuiError(f"Keystone: granting admin on {SERVICE_PROJECT} to {GLANCE_USER} failed (HTTP {status})", where=self.url)
        service = self._find_or_create(token, "services", "service", "type=image", {"name": "glance", "type": "image", "enabled": True})
        for interface, url in endpoints.items():
            status, _, found = self._call("GET", f"/v3/endpoints?service_id={service}&interface={interface}", token)
            current = found.get("endpoints", []) if status == 200 else []
            if current and current[0]["url"] == url:
                continue
            for old in current:
                self._call("DELETE", f"/v3/endpoints/{old['id']}", token)
            status, _, made = self._call("POST", "/v3/endpoints", token, {"endpoint": {
                "service_id": service, "interface": interface, "url": url, "region_id": REGION, "enabled": True}})
            if status != 201:
                raise GlanceTuiError(f"Keystone: creating the {interface} image endpoint failed (HTTP {status}: {made})", where=self.url)

    def catalog(self, token: str) -> dict[str, str]:
        """interface -> URL of the image service in the catalog."""
        status, _, body = self._call("GET", "/v3/auth/catalog", token)
        if status != 200:
            return {}
        return {e["interface"]: e["url"] for s in body.get("catalog", []) if s.get("type") == "image" for e in s.get("endpoints", [])}


def authtoken_section(*, auth_url: str, password: str) -> str:
    """``[keystone_authtoken]`` for glance-api.conf: the glance service user validates tokens."""
    return f"""\
[keystone_authtoken]
www_authenticate_uri = {auth_url}
auth_url = {auth_url}
auth_type = password
project_domain_name = {DOMAIN}
user_domain_name = {DOMAIN}
project_name = {SERVICE_PROJECT}
username = {GLANCE_USER}
password = {password}
service_token_roles_required = true
"""
