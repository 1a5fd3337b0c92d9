"""The one TOML file that describes a Glance deployment, validated strictly.

Unknown keys are errors (a typo must never silently fall back to a default during an
upgrade), and so are wrong types: ``port = "3306"`` is refused, not coerced (pydantic strict
mode). Every model validates itself, templates included, so a value that could not be used
mid-run (a name that reaches HAProxy's runtime socket or a command line, a URL, a template)
is refused at load with the key that holds it. Secrets are named by environment variable or
file, and resolved at load time so an unreadable password file is reported before anything
touches the cluster.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from glance_tui.errors import ConfigError, InvalidValue, clipped
from glance_tui.files import MIB, FileMissing, FileProblem, read_text
from glance_tui.releases import RELEASES
from glance_tui.secrets import Secret, SecretProblem, env_value, read_secret
from glance_tui.templates import check_template

DEFAULT_CONFIG = Path("glance-tui.toml")
CONFIG_FILE_LIMIT = 1 * MIB

MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR


def _seconds(most: float) -> Any:
    """A positive, finite number of seconds, at most ``most``."""
    return Annotated[float, Field(gt=0, le=most, allow_inf_nan=False)]


Seconds = _seconds(DAY)
MinuteSeconds = _seconds(MINUTE)
HourSeconds = _seconds(HOUR)
WeekSeconds = _seconds(7 * DAY)
Port = Annotated[int, Field(ge=1, le=65535)]


def _name(pattern: str, kind: str, allowed: str, max_length: int = 128, *, echo: bool = True) -> Any:
    """A string that must match ``pattern``; the error names what is allowed, never echoes control
    characters (nor, with ``echo=False``, the value at all: a password typed by mistake)."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value) or len(value) > max_length:
            what = f"{_shown(value)} is not a valid {kind}" if echo else f"must name an {kind} (the value is not shown: it may be a password typed here by mistake)"
            raise InvalidValue(what, f"use {allowed} (at most {max_length} characters)")
        return value

    return Annotated[str, AfterValidator(check)]


def _shown(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 2] + "…" + text[-1]


_CHAR_NAMES = {"\x1b": "ESC", "\r": "CR", "\n": "LF, a newline", "\t": "TAB", "\x7f": "DEL", "\x00": "NUL"}
CONTROL_FIX = "write it on one line, without control characters, escape sequences or bidirectional overrides: what is shown must be what runs"


def control_character(value: str) -> str | None:
    """Which character of ``value`` does not print (C0/C1 controls, DEL, bidi overrides, zero-width
    and line separators...) and where, e.g. ``U+001B (ESC) at character 24``; None when all print.

    Such a character lets a value look different on the screen from what it is (``\x1b[2K\r``
    erases what came before it), so the operator would approve one thing and run another.
    """
    for i, char in enumerate(value, 1):
        if not char.isprintable():
            name = _CHAR_NAMES.get(char) or unicodedata.name(char, "")
            return f"U+{ord(char):04X}{f' ({name})' if name else ''} at character {i}"
    return None


def _plain_text(value: str) -> str:
    found = control_character(value)
    if found:
        raise InvalidValue(f"contains a control character: {found}", CONTROL_FIX)
    return value


def _socket_address(value: str) -> str:
    """HAProxy's runtime API address: ``unix:/abs/path`` (or ``/abs/path``), or ``tcp:HOST:PORT``."""
    fix = "write unix:/absolute/path/to/socket or tcp:HOST:PORT (PORT from 1 to 65535; an IPv6 address as [ADDR]:PORT)"
    if value.startswith("tcp:"):
        host, sep, port = value[4:].rpartition(":")
        if not sep or not host:
            raise InvalidValue("tcp: needs a host and a port (tcp:HOST:PORT)", fix)
        if not re.fullmatch(r"[0-9]{1,10}", port):
            raise InvalidValue(f"the port {_shown(port)} is not a number", fix)
        if not 1 <= int(port) <= 65535:
            raise InvalidValue(f"port {int(port)} is not from 1 to 65535", fix)
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if ":" in bare:
            try:
                ipaddress.IPv6Address(bare)
            except ValueError:
                raise InvalidValue(f"{_shown(host)} is neither a host name nor an IP address", fix) from None
        elif bare != host or not re.fullmatch(r"(?!-)[A-Za-z0-9_.%-]+", host):
            raise InvalidValue(f"{_shown(host)} is not a host name or an IP address", fix)
        else:
            _host_labels(host)
        return value
    if value.startswith("unix:") or value.startswith("/"):
        path = value.removeprefix("unix:")
        if not path:
            raise InvalidValue("unix: needs the socket's path", fix)
        if not path.startswith("/"):
            raise InvalidValue("the socket path must be absolute", fix)
        return value
    raise InvalidValue("not a socket address", fix)


def host_key(host: str) -> str:
    """``host`` as it identifies a machine: case-insensitive, no trailing dot, an IP address in its normal form."""
    bare = host.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


def url_key(url: str) -> str:
    """``url`` as it identifies an endpoint: scheme and host case, the default port and a trailing slash do not count."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    path = parts.path.rstrip("/")
    return f"{scheme}://{host_key(parts.hostname or '')}:{port}{path}" + (f"?{parts.query}" if parts.query else "")


# Names that reach HAProxy's runtime socket or the stats form ("set server B/S state drain").
HAProxyName = _name(r"[A-Za-z0-9_.:-]+", "HAProxy name", "letters, digits, '-', '_', '.' or ':' as HAProxy does (no spaces, ';', '/' or control characters)")
NodeName = _name(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "name", "letters, digits, '.', '_' or '-', starting with a letter or digit", 64)
ServiceName = _name(r"[A-Za-z0-9][A-Za-z0-9@_.-]*", "service name", "a systemd unit or process name: letters, digits, '@', '.', '_' or '-'", 64)
def _host_labels(value: str) -> str:
    """A name (not an IP address) the resolver accepts: each dot-separated label 1 to 63 characters (Python's
    resolver raises UnicodeError, not a lookup failure, for ``x..y`` or a 64-character label)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    bad = next((label for label in labels if not 1 <= len(label) <= 63), None)
    if bad is not None:
        raise InvalidValue(f"{_shown(value)} is not a valid host name: {'an empty label' if not bad else f'a label of {len(bad)} characters'}",
                           "use a host name whose dot-separated parts have 1 to 63 characters, or an IP address")
    return value


Host = Annotated[_name(r"(?!-)[A-Za-z0-9_.:%-]+", "host", "a host name or an IP address (letters, digits, '.', '-', ':'), not starting with '-'", 253),
                 AfterValidator(_host_labels)]
SchemaName = _name(r"[A-Za-z0-9_$]+", "schema name", "letters, digits, '_' or '$' (a MySQL schema name)", 64)
DBUser = _name(r"[A-Za-z0-9_.$-]+", "database user", "letters, digits, '.', '_', '$' or '-'", 80)
SSHUser = _name(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*", "SSH user", "letters, digits, '.', '_', '@' or '-', not starting with '-' or '.'", 64)
EnvName = _name(r"[A-Za-z_][A-Za-z0-9_]*", "environment variable", "the variable's name: letters, digits and '_', not starting with a digit", 128, echo=False)
Version = _name(r"[A-Za-z0-9][A-Za-z0-9.+~:_-]*", "version", "a package version such as 28.2.0", 64)
PlainText = Annotated[str, AfterValidator(_plain_text)]


MAX_URL = 2048  # a URL or health path longer than this is no endpoint (httpx refuses 64 KiB mid-request)


def _http_url(value: str, example: str, credentials_fix: str) -> str:
    """An http(s) URL with a host, a valid port and no ``user:password@``."""
    if len(value) > MAX_URL:  # the HTTP client refuses a longer one mid-request
        raise InvalidValue(f"the URL has {len(value)} characters, more than {MAX_URL}", f"write it like {example}")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidValue("the URL contains spaces or control characters", f"write it like {example}")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise InvalidValue(f"not a valid URL ({exc})", f"write it like {example}") from None
    if parts.scheme not in ("http", "https") or not value.lower().startswith(("http://", "https://")):
        raise InvalidValue("must start with http:// or https://", f"write it like {example}")
    if "@" in parts.netloc:
        raise InvalidValue("credentials in the URL are refused (they would be printed and journaled)", credentials_fix)
    if "#" in value:  # never sent to the server; after it, the stats page's ";csv" would be part of the fragment
        raise InvalidValue("the URL has a #fragment (it is never sent to the server)", f"remove the # and what follows it, like {example}")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidValue(f"not a valid URL ({exc})", f"use a port from 1 to 65535, like {example}") from None
    if not parts.hostname:
        raise InvalidValue("the URL has no host", f"write it like {example}")
    _idna_host(parts.hostname, example)
    if port == 0:
        raise InvalidValue("port 0 is not a port", f"use a port from 1 to 65535, like {example}")
    return value


def url_problem(value: str, example: str) -> str:
    """Why ``value`` is no http(s) URL the tool can use, or "" (a URL given on a command line, checked as the config's are)."""
    try:
        _http_url(value, example, "remove user:password@ from the URL")
    except InvalidValue as exc:
        return exc.what
    return ""


def _idna_host(host: str, example: str) -> None:
    """A host name the HTTP client can use: an A-label (``xn--…``) must decode and a non-ASCII name must encode
    (httpx would raise mid-request, an internal error, for ``xn--zz.example``)."""
    import idna  # httpx's own IDNA codec

    try:
        for label in host.split("."):
            if label[:4].lower() == "xn--":
                idna.decode(label)
        if not host.isascii():
            idna.encode(host)
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidValue(f"the host {clipped(host, 80)} is not a valid international domain name ({clipped(exc, 80)})",
                           f"write the host's name or address, like {example}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


def _one_source(env: str | None, file: str | None, what: str, required: bool) -> None:
    if env and file:
        raise InvalidValue(f"both {what}_env and {what}_file are set", f"set only one of {what}_env and {what}_file")
    if required and not (env or file):
        raise InvalidValue(f"{what}_env or {what}_file is required (the {what} is never written inline)", f"add {what}_env = \"VAR\" or {what}_file = \"/path\"")


class DatabaseConfig(_Strict):
    host: Host = "127.0.0.1"
    port: Port = 3306
    user: DBUser = "glance"
    schema_name: SchemaName = Field("glance", alias="schema")
    password_env: EnvName | None = None
    password_file: PlainText | None = None
    connect_timeout: Seconds = 5.0
    query_timeout: Seconds = 10.0  # every query, its connect included
    # Hosts (as the database server sees them) that may be connected to the Glance schema besides
    # the nodes, e.g. a backup host: any other client blocks preflight and contract.
    known_clients: list[Host] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _password: Secret | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _password_source(self) -> "DatabaseConfig":
        _one_source(self.password_env, self.password_file, "password", required=True)
        return self

    @property
    def password(self) -> Secret:
        assert self._password is not None, "secrets are resolved by load_config()"
        return self._password


class BackupConfig(_Strict):
    where: NodeName = "local"
    directory: PlainText = "/var/backups/glance"
    mysqldump: PlainText = "mysqldump"
    timeout: Seconds = 3600.0


class LoadBalancerConfig(_Strict):
    """One HAProxy instance (Kolla-Ansible and OpenStack-Ansible run one per controller).

    ``backends`` lists every backend of this instance that routes to the Glance nodes (e.g.
    ``glance_api`` and ``glance_api_external``); drain and ready act on each of them, and the
    in-flight count of a node is the sum over every instance and backend. The single-backend
    form ``backend = "..."`` is still accepted.
    """

    name: NodeName = "lb"
    kind: Literal["haproxy"] = "haproxy"
    stats_url: str
    backend: HAProxyName | None = None  # the single-backend form; use ``backends`` for several
    backends: list[HAProxyName] = Field(default_factory=list)
    exclude_servers: list[HAProxyName] = Field(default_factory=list)  # servers of those backends that are not Glance nodes of this config
    username: PlainText | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    password_file: PlainText | None = None
    admin: Literal["http", "runtime"] = "http"
    runtime_socket: PlainText | None = None
    timeout: Seconds = 5.0
    verify_tls: bool = True
    # HAProxy's own ``hard-stop-after``: after a reload, the old process serves its open transfers
    # at most this long. Unset = unknown: a reload makes this instance's in-flight unknown until
    # the operator decides at the drain timeout.
    hard_stop_after: Seconds | None = None
    # The addresses this instance connects to the Glance servers from: connections from them are
    # its own (sessions it counts, health checks) and are not counted again on the node. Empty =
    # the stats_url host, resolved where the tool runs.
    source_addresses: list[Host] = Field(default_factory=list)

    _username: str | None = PrivateAttr(None)
    _password: Secret | None = PrivateAttr(None)

    @field_validator("stats_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = _http_url(value, "http://lb:8404/stats",
                          "remove user:password@ from stats_url; set username (or username_env) and password_env or password_file")
        return value.rstrip("/") if value.endswith("/") and value.count("/") > 3 else value

    @field_validator("runtime_socket")
    @classmethod
    def _socket(cls, value: str | None) -> str | None:
        return None if value is None else _socket_address(value)

    @model_validator(mode="after")
    def _credentials(self) -> "LoadBalancerConfig":
        if self.backend and self.backends:
            raise InvalidValue("both backends and backend are set", "set backends (a list) or backend (one name), not both")
        if not self.backend and not self.backends:
            raise InvalidValue("backends is required", 'list the HAProxy backends that hold the Glance servers, e.g. backends = ["glance_api", "glance_api_external"]')
        if self.backend:
            object.__setattr__(self, "backends", [self.backend])
        else:
            object.__setattr__(self, "backend", self.backends[0])
        dupes = sorted({b for b in self.backends if self.backends.count(b) > 1})
        if dupes:
            raise InvalidValue(f"backends are listed twice: {', '.join(dupes)}", "list each backend once")
        _one_source(self.password_env, self.password_file, "password", required=False)
        if self.username and self.username_env:
            raise InvalidValue("both username and username_env are set", "set only one of username and username_env")
        if self.username is not None and ":" in self.username:
            raise InvalidValue("a basic-auth username cannot contain ':'", "correct username")
        has_user = bool(self.username or self.username_env)
        has_password = bool(self.password_env or self.password_file)
        if has_user != has_password:
            raise InvalidValue("basic auth needs both a username and a password",
                               "set username (or username_env) and password_env (or password_file), or neither")
        if self.admin == "runtime" and not self.runtime_socket:
            raise InvalidValue('admin = "runtime" needs runtime_socket', "set runtime_socket = \"unix:/path\" or \"tcp:HOST:PORT\"")
        return self

    @property
    def auth(self) -> tuple[str, Secret] | None:
        if self._username and self._password:
            return self._username, self._password
        return None


class SSHConfig(_Strict):
    user: SSHUser = "root"
    port: Port = 22
    identity_file: PlainText | None = None
    known_hosts: PlainText = "~/.ssh/known_hosts"
    sudo: bool = False
    connect_timeout: HourSeconds = 10.0  # the whole connect: TCP, key exchange, host key check, auth
    command_timeout: Seconds = 900.0
    max_channels: Annotated[int, Field(ge=1, le=64)] = 4


def _absolute_path(value: str) -> str:
    _plain_text(value)
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise InvalidValue(f"{_shown(value)} is not an absolute path", "write an absolute path without spaces, e.g. /openstack/venvs")
    return value


def _image_repository(value: str) -> str:
    """A container image repository without tag or digest: ``[registry[:port]/]path``."""
    fix = "write the repository without a tag, e.g. quay.io/openstack.kolla/glance-api (the tag goes in target_tag)"
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*(?::[0-9]{1,5})?(?:/[a-z0-9][a-z0-9._-]*)*", value) or len(value) > 255:
        raise InvalidValue(f"{_shown(value)} is not an image repository" + (" (it has a tag or digest)" if "@" in value or ":" in value.rpartition("/")[2] else ""), fix)
    return value


Kind = Literal["packages", "kolla", "osa"]
ContainerName = _name(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "container name", "letters, digits, '.', '_' or '-', starting with a letter or digit", 128)
LxcName = _name(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*)?", "container name", "the LXC container's name (letters, digits, '.', '_' or '-'), or \"\" for Glance on metal", 128)
ImageTag = _name(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", "image tag", "letters, digits, '.', '_' or '-' (a tag such as 2026.1-ubuntu-noble)", 128)
ImageRepository = Annotated[str, AfterValidator(_image_repository)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]


class KollaConfig(_Strict):
    """``kind = "kolla"``: Glance in a container (Kolla-Ansible's ``glance_api``). Every key may be
    set in ``[commands.kolla]`` and overridden per node in ``[nodes.kolla]``; the first four are required."""

    engine: Literal["docker", "podman"] | None = None
    container: ContainerName | None = None
    image: ImageRepository | None = None  # repository, without tag
    target_tag: ImageTag | None = None
    # glance-manage's --config-file inside the one-off container (Kolla mounts /etc/kolla/glance-api there).
    manage_config: AbsolutePath | None = None


class OsaConfig(_Strict):
    """``kind = "osa"``: OpenStack-Ansible — Glance's uWSGI unit inside an LXC container ("" = on metal),
    one venv per version under ``venv_root`` (``glance-<version>``). Overridable per node in ``[nodes.osa]``."""

    container: LxcName | None = None
    venv_root: AbsolutePath | None = None
    # The target venv is venv_root/glance-<venv_tag>; OSA tags venvs with its own release version
    # (e.g. 31.1.0), so this defaults to policy.target_version only when unset.
    venv_tag: ImageTag | None = None
    service: ServiceName | None = None  # the systemd unit inside the container


KOLLA_REQUIRED = ("engine", "container", "image", "target_tag")
KOLLA_DEFAULTS = {"manage_config": "/var/lib/kolla/config_files/glance-api.conf"}
OSA_REQUIRED = ("container",)
OSA_DEFAULTS = {"venv_root": "/openstack/venvs", "service": "glance-api"}
# A Kolla node's truth is its container's image, not these: set for such a node, they would be ignored.
KIND_TRUTH_KEYS = ("installed_version", "installed_at")
# The [commands] keys each kind fills in (kinds.py renders them). Written in [commands] with the
# packages default (a copy of config.example.toml), they would drive a container host with apt-get.
KIND_KEYS = {"kolla": ("stop", "start", "upgrade", "glance_manage", "read_config", "installed_version"),
             "osa": ("stop", "start", "processes", "listeners", "installed_version", "installed_at", "glance_manage", "read_config")}


TEMPLATE_KEYS = ("stop", "start", "processes", "listeners", "connections", "is_running", "upgrade", "installed_version", "installed_at",
                 "glance_manage", "read_config", "rollback")


class CommandsConfig(_Strict):
    """Shell templates run on a node. ``{target_release}``, ``{target_version}``, ``{node}``,
    ``{port}`` (the node's API port, from ``api_url``) and ``{services}`` are replaced by shell-quoted values (``{services}``: each service name
    of ``services``, quoted separately and joined by spaces). Only these, written as plain
    ``{name}``; literal braces are ``{{`` and ``}}``. Every template is checked here, at load."""

    # What the node is: "packages" (systemd units of distribution packages: these defaults), "kolla"
    # (a container: [commands.kolla]) or "osa" (an LXC container and a venv per version: [commands.osa]).
    # Keys written in [commands] override the kind's commands; a node may have its own kind.
    kind: Kind = "packages"
    kolla: KollaConfig | None = None
    osa: OsaConfig | None = None
    services: Annotated[list[ServiceName], Field(min_length=1)] = Field(default_factory=lambda: ["glance-api"])
    stop: str = "systemctl stop {services}"
    start: str = "systemctl start {services}"
    # Every process on the node, one per line after the node's clock: "NOW\nPID PPID ETIMES COMM ARGS...".
    processes: str = "date +%s && ps -eo pid=,ppid=,etimes=,comm=,args="
    # Regular expressions over a process's whole command line (ARGS) that say "this is Glance".
    # Empty = the defaults: the eventlet glance-api, uWSGI serving a Glance ini or glance.wsgi.api,
    # Apache mod_wsgi's (wsgi:glance-…) daemon processes, and each program named in ``services``.
    process_patterns: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(default_factory=list)
    # What listens on the node's API port ({port}, from api_url): `ss -Htlnp` lines. Its holders and
    # their process tree are Glance too, whatever their names.
    listeners: str = "ss -Htlnp sport = :{port}"
    # The client connections established to the node's API port ({port}): `ss -Htn` lines. Those
    # from a load balancer's source_addresses are HAProxy's; any other counts as in flight (drain).
    connections: str = "ss -Htn state established sport = :{port}"
    # Optional override of "is a Glance service running": exit 0 running, 1 stopped, anything else unknown.
    # Empty = decided from ``processes``.
    is_running: str = ""
    upgrade: str = "apt-get install -y glance-api"
    installed_version: str = "dpkg-query -W glance-api"  # prints "glance-api<TAB>2:28.2.0-0ubuntu1"
    # When the installed Glance code was installed (epoch seconds, node clock): a process that started
    # before it still runs the old code.
    installed_at: str = "stat -L -c %Z \"$(command -v glance-api)\""
    glance_manage: str = "glance-manage"
    manage_timeout: WeekSeconds | None = None  # db expand/migrate/contract: none by default (never killed mid-DDL)
    read_config: str = "cat /etc/glance/glance-api.conf"
    rollback: str = ""  # reinstalls the old release on a node; empty = rollback not offered

    @field_validator("process_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                re.compile(text)
            except re.error as exc:
                raise InvalidValue(f"{_shown(text)} is not a regular expression ({exc})", "write a Python regular expression (re syntax), e.g. \"uwsgi .*glance\"") from None
        return value

    @field_validator(*TEMPLATE_KEYS)
    @classmethod
    def _template(cls, value: str) -> str:
        _plain_text(value)
        check_template(value)
        return value


class NodeConfig(_Strict):
    name: NodeName
    ssh_host: Host
    ssh_port: Port | None = None
    ssh_user: SSHUser | None = None
    identity_file: PlainText | None = None
    known_hosts: PlainText | None = None
    lb_server: HAProxyName
    api_url: str
    role: Literal["existing", "new"] = "existing"
    # The address the database sees this node's Glance connect from, when it is neither ssh_host
    # nor api_url's host (another network, NAT).
    db_client_host: Host | None = None
    kind: Kind | None = None  # None = [commands] kind
    kolla: KollaConfig | None = None  # keys override [commands.kolla] one by one
    osa: OsaConfig | None = None  # keys override [commands.osa] one by one

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = _http_url(value, "http://10.0.0.11:9292 (this node's own Glance API)",
                          "remove user:password@ from api_url (the health checks need no credentials)")
        return value.rstrip("/")


class PolicyConfig(_Strict):
    target_release: str
    target_version: Version | None = None
    new_node: NodeName | None = None
    drain_timeout: Seconds = 600.0
    lb_poll_interval: MinuteSeconds = 1.0
    node_poll_interval: HourSeconds = 5.0
    min_in_rotation: Annotated[int, Field(ge=1, le=1000)] = 1
    up_timeout: Seconds = 120.0
    # Zero in flight is trusted only after consecutive zero readings spanning this long (at least one
    # HAProxy health-check interval), on every instance and backend, with the server in DRAIN or MAINT.
    drain_quiet_period: HourSeconds = 5.0
    # The node's own health endpoints, each must answer 200 (300 for /versions); no token needed
    # (/healthcheck is oslo.middleware's, in Glance's default pipeline, before authtoken).
    health_paths: Annotated[list[Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=MAX_URL), AfterValidator(_plain_text)]], Field(min_length=1)] = Field(
        default_factory=lambda: ["/healthcheck", "/versions"])

    @field_validator("target_release")
    @classmethod
    def _release(cls, value: str) -> str:
        if value not in RELEASES:
            known = ", ".join(RELEASES)
            raise InvalidValue(f"unknown release {_shown(value)}", f"use one of: {known}")
        return value


class Config(_Strict):
    database: DatabaseConfig
    backup: BackupConfig = BackupConfig()
    load_balancer: LoadBalancerConfig | None = None  # one HAProxy instance ...
    load_balancers: list[LoadBalancerConfig] = Field(default_factory=list)  # ... or several ([[load_balancers]])
    ssh: SSHConfig = SSHConfig()
    commands: CommandsConfig = CommandsConfig()
    nodes: Annotated[list[NodeConfig], Field(min_length=1)]
    policy: PolicyConfig

    _path: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        names = [n.name for n in self.nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidValue(f"node names must be unique; repeated: {', '.join(dupes)}", "give each [[nodes]] table its own name", key="nodes")
        servers = [n.lb_server for n in self.nodes]
        self._one_node_per_endpoint()
        if self.backup.where != "local" and self.backup.where not in names:
            raise InvalidValue(f"{self.backup.where!r} is neither \"local\" nor a node", f'use "local" or one of: {", ".join(names)}', key="backup.where")
        if self.load_balancer is not None and self.load_balancers:
            raise InvalidValue("both [load_balancer] and [[load_balancers]] are set", "use [load_balancer] (one HAProxy) or [[load_balancers]] (several), not both")
        if self.load_balancer is None and not self.load_balancers:
            raise InvalidValue("[[load_balancers]] (or [load_balancer]) is required", "describe the HAProxy instances in front of Glance, see config.example.toml", key="load_balancers")
        lb_names = [lb.name for lb in self.lbs]
        dupes = sorted({n for n in lb_names if lb_names.count(n) > 1})
        if dupes:
            raise InvalidValue(f"each load balancer needs its own name; repeated: {', '.join(dupes)}", "give each [[load_balancers]] table its own name", key="load_balancers")
        for i, lb in enumerate(self.lbs):
            excluded = sorted(set(lb.exclude_servers) & set(servers))
            if excluded:
                section = "load_balancer" if self.load_balancer is not None else f"load_balancers[{i}]"
                raise InvalidValue(f"names a configured node's lb_server: {', '.join(excluded)} (a node of this config is never excluded)",
                                   "remove it from exclude_servers (it lists servers that are NOT Glance nodes of this config)",
                                   key=f"{section}.exclude_servers")
        if self.policy.new_node and self.policy.new_node not in names:
            raise InvalidValue(f"{self.policy.new_node!r} is not one of the nodes", f"use one of: {', '.join(names)}", key="policy.new_node")
        self._kinds_complete()
        floor = self.policy.min_in_rotation
        if floor >= len(names) and (len(names) > 1 or "min_in_rotation" in self.policy.model_fields_set):
            raise InvalidValue(
                f"{floor} is not below the number of nodes ({len(names)}): no node could ever be drained",
                f"use at most {max(len(names) - 1, 1)}" + ("" if len(names) > 1 else ", and configure at least two nodes"),
                key="policy.min_in_rotation",
            )
        return self

    def _one_node_per_endpoint(self) -> None:
        """Two nodes reached at one SSH address, one API or one LB server would have one node's
        stop, health check or drain act on the other."""
        endpoints = (("ssh_host", "SSH address (ssh_host and port)", lambda n: f"{host_key(n.ssh_host)}:{n.ssh_port or self.ssh.port}"),
                     ("api_url", "api_url", lambda n: url_key(n.api_url)),
                     ("lb_server", "lb_server", lambda n: n.lb_server))
        for field, what, of in endpoints:
            seen: dict[str, str] = {}
            for i, node in enumerate(self.nodes):
                key = of(node)
                if key in seen:
                    raise InvalidValue(f"{node.name} has the same {what} as {seen[key]}: one node's commands, health checks or drain would act on the other",
                                       f"give each node its own {what}", key=f"nodes[{i}].{field}")
                seen[key] = node.name

    def _kinds_complete(self) -> None:
        """Each node's kind has every key it needs, and no kind table is written for a kind no node has
        (a forgotten ``kind = "kolla"`` would otherwise drive a container host with apt-get)."""
        kinds = {n.name: self.kind_of(n.name) for n in self.nodes}
        for table in ("kolla", "osa"):
            if getattr(self.commands, table) is not None and table not in kinds.values():
                raise InvalidValue(f"[commands.{table}] is set but no node is of kind {table!r}", f'add kind = "{table}" to [commands] (or to the nodes it is for), or remove [commands.{table}]', key=f"commands.{table}")
        for i, node in enumerate(self.nodes):
            for table in ("kolla", "osa"):
                if getattr(node, table) is not None and kinds[node.name] != table:
                    raise InvalidValue(f"[nodes.{table}] is set but {node.name} is of kind {kinds[node.name]!r}", f'add kind = "{table}" to this node, or remove its [nodes.{table}]', key=f"nodes[{i}].{table}")
            kind = kinds[node.name]
            if kind != "packages":
                self._commands_fit(node, kind)
                self._kind_settings_complete(node, kind)

    def _commands_fit(self, node: NodeConfig, kind: str) -> None:
        """No [commands] key a kolla/osa node would run as written but should not: a copied packages
        default, a truth key a Kolla node reads itself; and OSA's upgrade is the operator's."""
        for key in KIND_KEYS[kind]:
            if key in self.commands.model_fields_set and getattr(self.commands, key) == CommandsConfig.model_fields[key].default:
                raise InvalidValue(f"is the packages default, but {node.name} is of kind {kind!r}", f"remove it from [commands] (the {kind} kind fills it in), or write the command you mean", key=f"commands.{key}")
        for key in KIND_TRUTH_KEYS if kind == "kolla" else ():
            if key in self.commands.model_fields_set:
                raise InvalidValue(f"is set, but {node.name} is of kind {kind!r}, whose container image tells the running code",
                                   "remove it (the kind reads it), or use kind = \"packages\" with your own commands", key=f"commands.{key}")
        if kind == "osa" and "upgrade" not in self.commands.model_fields_set:
            raise InvalidValue(f"is required for kind 'osa' (node {node.name}): OpenStack-Ansible builds the target venv from its deploy host",
                               "write the command that installs the target venv on {node}, e.g. upgrade = \"ssh deploy openstack-ansible os-glance-install.yml --limit {node} --tags glance-install\"", key="commands.upgrade")

    def _kind_settings_complete(self, node: NodeConfig, kind: str) -> None:
        settings = self._kind_table(node, kind)
        required = KOLLA_REQUIRED
        if kind == "osa":
            settings.setdefault("venv_tag", self.policy.target_version)
            required = OSA_REQUIRED + ("venv_tag",)
        missing = [k for k in required if settings.get(k) is None]
        if missing:
            raise InvalidValue(f"{missing[0]} is required for kind {kind!r} (node {node.name})",
                               f"add {missing[0]} = ... to [commands.{kind}] (every {kind} node) or to this node's [nodes.{kind}]", key=f"commands.{kind}.{missing[0]}")

    def _kind_table(self, node: NodeConfig, kind: str) -> dict[str, Any]:
        defaults = KOLLA_DEFAULTS if kind == "kolla" else OSA_DEFAULTS
        shared = getattr(self.commands, kind)
        own = getattr(node, kind)
        merged: dict[str, Any] = dict(defaults)
        for table in (shared, own):
            if table is not None:
                merged.update({k: v for k, v in table.model_dump().items() if v is not None})
        return merged

    def kind_of(self, node: str) -> str:
        """``packages``, ``kolla`` or ``osa``: the node's own kind, else ``[commands] kind``."""
        return self.node(node).kind or self.commands.kind

    def kolla_of(self, node: str) -> KollaConfig:
        """The node's Kolla settings: [commands.kolla], its [nodes.kolla] key by key, the defaults."""
        return KollaConfig.model_validate(self._kind_table(self.node(node), "kolla"))

    def osa_of(self, node: str) -> OsaConfig:
        """The node's OpenStack-Ansible settings, merged like :meth:`kolla_of` (``venv_tag``: else the target version)."""
        table = self._kind_table(self.node(node), "osa")
        table.setdefault("venv_tag", self.policy.target_version)
        return OsaConfig.model_validate(table)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def lbs(self) -> list[LoadBalancerConfig]:
        """Every HAProxy instance, whichever form the file used."""
        return [self.load_balancer] if self.load_balancer is not None else list(self.load_balancers)

    @property
    def http_timeout(self) -> float:
        """Timeout for the tool's own HTTP checks of a node's API."""
        return min(lb.timeout for lb in self.lbs)

    def node(self, name: str) -> NodeConfig:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


# ---------------------------------------------------------------- loading & errors

_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or correct its spelling; config.example.toml lists every key",
    "int_parsing": "write a whole number without quotes",
    "int_type": "write a whole number without quotes",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number without quotes",
    "float_type": "write a number without quotes",
    "finite_number": "write a finite number (inf and nan are not allowed)",
    "bool_parsing": "write true or false without quotes",
    "bool_type": "write true or false without quotes",
    "string_type": 'write a quoted string, e.g. key = "value"',
    "list_type": 'write a list, e.g. ["a", "b"] (or [[nodes]] tables)',
    "model_type": "write a table, e.g. [section]",
    "model_attributes_type": "write a table, e.g. [section]",
    "dict_type": "write a table, e.g. [section]",
    "literal_error": "use one of the allowed values",
    "too_short": "add at least one entry",
    "string_pattern_mismatch": "use letters, digits, '.', '_' or '-'",
}


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(str(item) if str(item).isprintable() else _shown(str(item)))  # an unknown key may hold anything
    return ".".join(parts)


def _strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a validated config, with its key (``nodes[1].name``)."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings(v, f"{key}[{i}]")


def _refuse_control_characters(config: Config, where: str) -> None:
    """Every string of the config (templates, names, paths, titles) prints as what it is."""
    for key, value in _strings(config.model_dump(by_alias=True, exclude_none=True)):
        found = control_character(value)
        if found:
            raise ConfigError(f"contains a control character: {found}", where=f"{where}: {key}", fix=CONTROL_FIX)


def _bound_fix(kind: str, ctx: dict[str, Any]) -> str | None:
    for name, word in (("gt", "larger than"), ("ge", "at least"), ("lt", "smaller than"), ("le", "at most")):
        if name in ctx and kind.startswith(("greater", "less")):
            return f"use a value {word} {ctx[name]:g}" if isinstance(ctx[name], (int, float)) else None
    return None


def _describe(err: dict[str, Any]) -> tuple[str, str, str]:
    """(what, fix, key override) of one pydantic error, without ever echoing a long or multi-line input."""
    kind = err["type"]
    ctx = err.get("ctx", {})
    if kind == "missing":
        return "required key is missing", _FIXES[kind], ""
    if kind == "extra_forbidden":
        return "unknown key", _FIXES[kind], ""
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        if isinstance(error, InvalidValue):
            return error.what, error.fix, error.key
        return str(error or err["msg"]), "see config.example.toml", ""
    got = err.get("input")
    what = err["msg"][0].lower() + err["msg"][1:]
    if got is not None and isinstance(got, (str, int, float, bool)):
        what += f" (got {_shown(got) if isinstance(got, str) else repr(got)})"
    elif got is not None and not isinstance(got, (dict, list)):
        what += f" (got a {type(got).__name__})"
    return what, _bound_fix(kind, ctx) or _FIXES.get(kind, "see config.example.toml"), ""


def _resolve_secrets(config: Config, where: str) -> None:
    db = config.database
    try:
        db._password = read_secret(env=db.password_env, file=db.password_file, what="database password", key="database.password")
    except SecretProblem as exc:
        raise ConfigError(str(exc), where=f"{where}: database", fix=exc.fix) from None
    for i, lb in enumerate(config.lbs):
        if not (lb.username_env or lb.username):
            continue
        section = "load_balancer" if config.load_balancer is not None else f"load_balancers[{i}]"
        try:
            lb._username = env_value(lb.username_env, "load balancer username", f"{section}.username_env") if lb.username_env else lb.username
            lb._password = read_secret(env=lb.password_env, file=lb.password_file, what="load balancer password", key=f"{section}.password")
        except SecretProblem as exc:
            raise ConfigError(str(exc), where=f"{where}: {section}", fix=exc.fix) from None
    _secrets_appear_nowhere(config, where)


def _secrets_appear_nowhere(config: Config, where: str) -> None:
    """A password that is also (part of) a config value would be redacted there, and the redaction
    would tell every reader of the output which value the password is."""
    secrets = [(config.database.password, "database password")] + [(lb._password, "load balancer password") for lb in config.lbs if lb._password]
    for key, value in _strings(config.model_dump(by_alias=True, exclude_none=True)):
        for secret, what in secrets:
            if secret.reveal() in value:
                raise ConfigError(f"contains the {what}: redacting it there would reveal the password to whoever reads the output",
                                  where=f"{where}: {key}", fix=f"use a {what} that appears nowhere in the config")


def parse_config(data: dict[str, Any], where: str = "<config>", *, secrets: bool = True) -> Config:
    """Validate a decoded TOML document; raise :class:`ConfigError` on the first problem."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        what, fix, key = _describe(first)
        key = key or _loc(first["loc"])
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(what + more, where=f"{where}: {key}" if key else where, fix=fix) from None
    _refuse_control_characters(config, where)
    if secrets:
        _resolve_secrets(config, where)
    return config


def load_config(path: str | Path | None = None, *, secrets: bool = True) -> Config:
    """Read, validate and (unless ``secrets=False``, for ``plan``) resolve secrets for the config at ``path``."""
    if path is not None and str(path) == "":  # never "the default file": the operator typed something else
        raise ConfigError("an empty config path", where="-c", fix="pass -c FILE, the deployment's TOML config")
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        text = read_text(path, CONFIG_FILE_LIMIT, "config file")
    except FileMissing:
        raise ConfigError("config file not found", where=str(path),
                          fix="pass -c FILE, or copy config.example.toml to ./glance-tui.toml and edit it") from None
    except FileProblem as exc:
        raise ConfigError(str(exc), where=str(path), fix="pass the deployment's TOML config (a regular UTF-8 file of at most 1 MiB)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", where=str(path), fix="correct the syntax at that line") from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", where=str(path), fix="write the config as config.example.toml does") from None
    _refuse_undecided_target(data, text, str(path))
    config = parse_config(data, where=str(path), secrets=secrets)
    config._path = path.resolve()
    return config


_TARGET_LINE = re.compile(r"#\s*target_release\s*=")
_QUESTION_LINE = "# QUESTION:"


def _refuse_undecided_target(data: dict[str, Any], text: str, where: str) -> None:
    """A config ``glance-tui init`` wrote without deciding the target release has ``target_release``
    commented out under a ``# QUESTION:`` line: say so in one line that names the question."""
    policy = data.get("policy")
    if not isinstance(policy, dict) or "target_release" in policy:
        return
    question = None
    for line in text.splitlines():
        if line.startswith(_QUESTION_LINE):
            question = line[len(_QUESTION_LINE):].strip().removeprefix("target_release:").strip()
        elif _TARGET_LINE.match(line) and question is not None:
            raise ConfigError(f"the target release is not decided (init asks: {clipped(question, 240)})", where=f"{where}: policy.target_release",
                              fix="answer the QUESTION above policy.target_release, or pass --target-release to init")
        elif line.lstrip().startswith("["):
            question = None  # a question belongs to the lines of its table
