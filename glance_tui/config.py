"""The one TOML file that describes a Glance deployment, validated strictly.

Unknown keys are errors (a typo must never silently fall back to a default during an
upgrade). Secrets are named by environment variable or file, and resolved at load time so
an unreadable password file is reported before anything touches the cluster.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from glance_tui.errors import ConfigError
from glance_tui.releases import RELEASES
from glance_tui.secrets import Secret, read_secret

DEFAULT_CONFIG = Path("glance-tui.toml")

Seconds = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _one_source(env: str | None, file: str | None, what: str, required: bool) -> None:
    if env and file:
        raise ValueError(f"set only one of {what}_env and {what}_file, not both")
    if required and not (env or file):
        raise ValueError(f"{what}_env or {what}_file is required (the {what} is never written inline)")


class DatabaseConfig(_Strict):
    host: str = "127.0.0.1"
    port: Port = 3306
    user: str = "glance"
    schema_name: str = Field("glance", alias="schema")
    password_env: str | None = None
    password_file: str | None = None
    connect_timeout: Seconds = 5.0
    query_timeout: Seconds = 10.0

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
    where: str = "local"
    directory: str = "/var/backups/glance"
    mysqldump: str = "mysqldump"
    timeout: Seconds = 3600.0


class LoadBalancerConfig(_Strict):
    """One HAProxy instance (Kolla-Ansible and OpenStack-Ansible run one per controller).

    ``backends`` lists every backend of this instance that routes to the Glance nodes (e.g.
    ``glance_api`` and ``glance_api_external``); drain and ready act on each of them, and the
    in-flight count of a node is the sum over every instance and backend. The single-backend
    form ``backend = "..."`` is still accepted.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "lb"
    kind: Literal["haproxy"] = "haproxy"
    stats_url: str
    backend: str | None = None  # the single-backend form; use ``backends`` for several
    backends: list[str] = Field(default_factory=list)
    exclude_servers: list[str] = Field(default_factory=list)  # servers of those backends that are not Glance nodes of this config
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    admin: Literal["http", "runtime"] = "http"
    runtime_socket: str | None = None
    timeout: Seconds = 5.0
    verify_tls: bool = True

    _username: str | None = PrivateAttr(None)
    _password: Secret | None = PrivateAttr(None)

    @field_validator("stats_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (the stats page, e.g. http://lb:8404/stats)")
        return value.rstrip("/") if value.endswith("/") and value.count("/") > 3 else value

    @field_validator("runtime_socket")
    @classmethod
    def _socket(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("unix:", "tcp:", "/")):
            raise ValueError("must be unix:/path/to/socket or tcp:HOST:PORT")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> "LoadBalancerConfig":
        if self.backend and self.backends:
            raise ValueError("set backends (a list) or backend (one name), not both")
        if not self.backend and not self.backends:
            raise ValueError('backends is required: the HAProxy backends that hold the Glance servers, e.g. ["glance_api", "glance_api_external"]')
        if self.backend:
            object.__setattr__(self, "backends", [self.backend])
        else:
            object.__setattr__(self, "backend", self.backends[0])
        dupes = sorted({b for b in self.backends if self.backends.count(b) > 1})
        if dupes:
            raise ValueError(f"backends are listed twice: {', '.join(dupes)}")
        _one_source(self.password_env, self.password_file, "password", required=False)
        if self.username and self.username_env:
            raise ValueError("set only one of username and username_env")
        has_user = bool(self.username or self.username_env)
        has_password = bool(self.password_env or self.password_file)
        if has_user != has_password:
            raise ValueError("basic auth needs both a username (username/username_env) and a password (password_env/password_file)")
        if self.admin == "runtime" and not self.runtime_socket:
            raise ValueError('admin = "runtime" needs runtime_socket (unix:/path or tcp:HOST:PORT)')
        return self

    @property
    def auth(self) -> tuple[str, Secret] | None:
        if self._username and self._password:
            return self._username, self._password
        return None


class SSHConfig(_Strict):
    user: str = "root"
    port: Port = 22
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    sudo: bool = False
    connect_timeout: Seconds = 10.0
    command_timeout: Seconds = 900.0
    max_channels: Annotated[int, Field(ge=1, le=64)] = 4


class CommandsConfig(_Strict):
    """Shell templates run on a node. ``{target_release}``, ``{target_version}``, ``{node}``
    and ``{services}`` are replaced by shell-quoted values (``{services}``: each service name
    of ``services``, quoted separately and joined by spaces)."""

    services: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9@_.-]*$")]], Field(min_length=1)] = Field(
        default_factory=lambda: ["glance-api"])
    stop: str = "systemctl stop {services}"
    start: str = "systemctl start {services}"
    # Every process on the node, one per line after the node's clock: "NOW\nPID ETIMES COMM ARGS...".
    # The engine keeps the processes whose COMM is one of ``services``: running/stopped, and when each started.
    processes: str = "date +%s && ps -eo pid=,etimes=,comm=,args="
    # Optional override of "is a Glance service running": exit 0 running, 1 stopped, anything else unknown.
    # Empty = decided from ``processes``.
    is_running: str = ""
    upgrade: str = "apt-get install -y glance-api"
    installed_version: str = "dpkg-query -W glance-api"  # prints "glance-api<TAB>2:28.2.0-0ubuntu1"
    # When the installed Glance code was installed (epoch seconds, node clock): a process that started
    # before it still runs the old code.
    installed_at: str = "stat -L -c %Z \"$(command -v glance-api)\""
    glance_manage: str = "glance-manage"
    manage_timeout: Annotated[float, Field(gt=0)] | None = None  # db expand/migrate/contract: none by default (never killed mid-DDL)
    read_config: str = "cat /etc/glance/glance-api.conf"
    rollback: str = ""  # reinstalls the old release on a node; empty = rollback not offered


class NodeConfig(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    ssh_host: str
    ssh_port: Port | None = None
    ssh_user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    lb_server: str
    api_url: str
    role: Literal["existing", "new"] = "existing"

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (this node's own Glance API, e.g. http://10.0.0.11:9292)")
        return value.rstrip("/")


class PolicyConfig(_Strict):
    target_release: str
    target_version: str | None = None
    new_node: str | None = None
    drain_timeout: Seconds = 600.0
    lb_poll_interval: Seconds = 1.0
    node_poll_interval: Seconds = 5.0
    min_in_rotation: Annotated[int, Field(ge=1)] = 1
    up_timeout: Seconds = 120.0
    # Zero in flight is trusted only after consecutive zero readings spanning this long (at least one
    # HAProxy health-check interval), on every instance and backend, with the server in DRAIN or MAINT.
    drain_quiet_period: Seconds = 5.0
    # The node's own health endpoints, each must answer 200 (300 for /versions); no token needed
    # (/healthcheck is oslo.middleware's, in Glance's default pipeline, before authtoken).
    health_paths: Annotated[list[Annotated[str, Field(pattern=r"^/[^\s]*$")]], Field(min_length=1)] = Field(
        default_factory=lambda: ["/healthcheck", "/versions"])

    @field_validator("target_release")
    @classmethod
    def _release(cls, value: str) -> str:
        if value not in RELEASES:
            known = ", ".join(RELEASES)
            raise ValueError(f"unknown release {value!r}; known releases: {known}")
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
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        servers = [n.lb_server for n in self.nodes]
        dupes = sorted({s for s in servers if servers.count(s) > 1})
        if dupes:
            raise ValueError(f"each node needs its own lb_server; shared: {', '.join(dupes)}")
        if self.backup.where != "local" and self.backup.where not in names:
            raise ValueError(f'backup.where must be "local" or a node name ({", ".join(names)}), not {self.backup.where!r}')
        if self.load_balancer is not None and self.load_balancers:
            raise ValueError("use either [load_balancer] (one HAProxy) or [[load_balancers]] (several), not both")
        if self.load_balancer is None and not self.load_balancers:
            raise ValueError("[[load_balancers]] (or [load_balancer]) is required: the HAProxy instances in front of Glance")
        lb_names = [lb.name for lb in self.lbs]
        dupes = sorted({n for n in lb_names if lb_names.count(n) > 1})
        if dupes:
            raise ValueError(f"each load balancer needs its own name; repeated: {', '.join(dupes)}")
        if self.policy.new_node and self.policy.new_node not in names:
            raise ValueError(f"policy.new_node {self.policy.new_node!r} is not one of the nodes ({', '.join(names)})")
        return self

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
    "float_parsing": "write a number without quotes",
    "float_type": "write a number without quotes",
    "bool_parsing": "write true or false without quotes",
    "bool_type": "write true or false without quotes",
    "string_type": 'write a quoted string, e.g. key = "value"',
    "list_type": "write a list, e.g. [[nodes]] tables",
    "literal_error": "use one of the allowed values",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "too_short": "add at least one entry",
    "string_pattern_mismatch": "use letters, digits, '.', '_' or '-'",
}


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    kind = err["type"]
    if kind == "missing":
        what = "required key is missing"
    elif kind == "extra_forbidden":
        what = "unknown key"
    elif kind == "value_error":
        what = str(err.get("ctx", {}).get("error", err["msg"]))
        return what, ""
    else:
        got = err.get("input")
        what = err["msg"][0].lower() + err["msg"][1:]
        if got is not None and not isinstance(got, (dict, list)):
            what += f" (got {got!r})"
    return what, _FIXES.get(kind, "see config.example.toml")


def _resolve_secrets(config: Config, where: str) -> None:
    db = config.database
    try:
        db._password = read_secret(env=db.password_env, file=db.password_file, what="database password")
    except ValueError as exc:
        raise ConfigError(str(exc), where=f"{where}: database", fix="export the variable or fix the file path/permissions") from None
    for i, lb in enumerate(config.lbs):
        if not (lb.username_env or lb.username):
            continue
        section = "load_balancer" if config.load_balancer is not None else f"load_balancers[{i}]"
        try:
            if lb.username_env:
                lb._username = read_secret(env=lb.username_env, file=None, what="load balancer username").reveal()
            else:
                lb._username = lb.username
            lb._password = read_secret(env=lb.password_env, file=lb.password_file, what="load balancer password")
        except ValueError as exc:
            raise ConfigError(str(exc), where=f"{where}: {section}", fix="export the variable or fix the file path/permissions") from None


def parse_config(data: dict[str, Any], where: str = "<config>", *, secrets: bool = True) -> Config:
    """Validate a decoded TOML document; raise :class:`ConfigError` on the first problem."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        what, fix = _describe(first)
        key = _loc(first["loc"])
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(what + more, where=f"{where}: {key}" if key else where, fix=fix) from None
    from glance_tui.commands import validate_templates

    try:
        validate_templates(config)
    except ValueError as exc:
        raise ConfigError(str(exc), where=f"{where}: commands", fix="use only the documented placeholders") from None
    if secrets:
        _resolve_secrets(config, where)
    return config


def load_config(path: str | Path | None = None, *, secrets: bool = True) -> Config:
    """Read, validate and (unless ``secrets=False``, for ``plan``) resolve secrets for the config at ``path``."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "config file not found",
            where=str(path),
            fix="pass -c FILE, or copy config.example.toml to ./glance-tui.toml and edit it",
        ) from None
    except (PermissionError, IsADirectoryError, OSError) as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror or exc})", where=str(path), fix="check the path and its permissions") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", where=str(path), fix="save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", where=str(path), fix="correct the syntax at that line") from None
    config = parse_config(data, where=str(path), secrets=secrets)
    config._path = path.resolve()
    return config
