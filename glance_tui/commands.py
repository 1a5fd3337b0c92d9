"""Build the exact shell commands run on nodes, with every substituted value quoted.

Templates come from ``[commands]`` in the config. The operator writes the template's own
shell syntax; everything *we* put into it (release names, node names, paths, arguments) goes
through :func:`shlex.quote`, so a value can never become shell syntax.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

from glance_tui import templates
from glance_tui.config import CommandsConfig, Config
from glance_tui.kinds import kind_commands, kolla_image, kolla_version_of, spare_name
from glance_tui.templates import PLACEHOLDERS

__all__ = ["NO_TIMEOUT", "PLACEHOLDERS", "NodeCommands", "RemoteCommand", "quote_args", "render"]

Where = Literal["node", "local"]

# A remote timeout long enough to mean "none": 30 days (coreutils timeout needs a number).
NO_TIMEOUT = 30 * 24 * 3600.0


@dataclass(frozen=True)
class RemoteCommand:
    """One command, where it runs, and whether it changes the cluster."""

    node: str  # node name, or "local"
    command: str  # the exact shell text sent to the node's login shell
    purpose: str  # a few words for the operator
    changes: bool = False  # True for drain/stop/upgrade/expand/... (needs confirmation)
    timeout: float | None = None
    tags: tuple[str, ...] = field(default=())

    def display(self) -> str:
        return f"[{self.node}] $ {self.command}"


def quote_args(*args: str) -> str:
    """Join arguments into one safely quoted shell string."""
    return " ".join(shlex.quote(str(a)) for a in args)


def render(template: str, **values: str | list[str] | None) -> str:
    """Substitute ``{placeholder}`` values (shell-quoted) into an operator template."""
    return templates.render(template, values)


def _api_port(config: Config, node: str) -> str:
    """The node's API port (from its ``api_url``), for ``{port}``; "" for a name that is no node."""
    found = next((n for n in config.nodes if n.name == node), None)
    if found is None:
        return ""
    parts = urlsplit(found.api_url)
    return str(parts.port or (443 if parts.scheme == "https" else 80))


class NodeCommands:
    """The commands for one node, rendered from the config's templates."""

    def __init__(self, config: Config, node: str) -> None:
        self.config = config
        self.node = node
        self._values = {
            "node": node,
            "target_release": config.policy.target_release,
            "target_version": config.policy.target_version or "",
            "services": list(config.commands.services),
            "port": _api_port(config, node),
        }

        # The node's kind's commands (kinds.py) for every key the operator did not write in [commands].
        written = config.commands.model_fields_set
        self._kind = {k: v for k, v in kind_commands(config, node, str(self._values["port"])).items() if k not in written}

    def _t(self, template: str) -> str:
        return templates.render(template, self._values)

    def _cmd(self, key: str) -> str:
        """The command for one ``[commands]`` key: the operator's template, else the kind's."""
        if key in self._kind:
            return self._kind[key]
        return self._t(getattr(self.templates, key))

    @property
    def kind(self) -> str:
        return self.config.kind_of(self.node)

    @property
    def templates(self) -> CommandsConfig:
        return self.config.commands

    def stop(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("stop"), "stop the Glance services", changes=True)

    def start(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("start"), "start the Glance services", changes=True)

    def is_running(self) -> RemoteCommand | None:
        """The operator's own "is a Glance service running" probe, if configured (else: processes)."""
        if not self.templates.is_running:
            return None
        return RemoteCommand(self.node, self._t(self.templates.is_running), "is any Glance service running?")

    def processes(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("processes"), "the node's clock and its processes (which Glance services run, since when)")

    def listeners(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("listeners"), "what listens on the node's API port (and which processes hold it)")

    def connections(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._t(self.templates.connections), "the client connections established to the node's API port")

    def installed_at(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("installed_at"), "when the installed Glance code was installed")

    def upgrade(self) -> RemoteCommand:
        what = f"pull the target image of Glance {self.config.policy.target_release}" if "upgrade" in self._kind and self.kind == "kolla" else f"install Glance {self.config.policy.target_release}"
        return RemoteCommand(self.node, self._cmd("upgrade"), what, changes=True)

    def container_reads(self) -> tuple[RemoteCommand, RemoteCommand]:
        """A Kolla node's truth: ``container inspect`` of its container, ``image inspect`` of the target image."""
        k = self.config.kolla_of(self.node)
        return self.inspect_container(str(k.container)), replace(self.image_inspect(kolla_image(k)), purpose=f"the target image {kolla_image(k)}")

    def recreate_preview(self) -> str:
        """What the upgrade of a Kolla node does after the pull (the real command is built from the inspected container)."""
        k = self.config.kolla_of(self.node)
        spare = spare_name(str(k.container))
        return (f"{quote_args(str(k.engine), 'create', '--name', spare)} <every setting of "
                f"{k.container} (mounts, network, environment, limits, logging, ...)> {quote_args(kolla_image(k))} && "
                f"{quote_args(str(k.engine), 'container', 'rm', str(k.container))} && {quote_args(str(k.engine), 'rename', spare, str(k.container))}")

    def inspect_container(self, name: str) -> RemoteCommand:
        k = self.config.kolla_of(self.node)
        return RemoteCommand(self.node, quote_args(str(k.engine), "container", "inspect", name), f"container {name}: state and image")

    def image_inspect(self, image: str) -> RemoteCommand:
        k = self.config.kolla_of(self.node)
        return RemoteCommand(self.node, quote_args(str(k.engine), "image", "inspect", image), f"image {image}: its id and configuration")

    def image_version(self, image: str) -> RemoteCommand:
        """The Glance version inside one image (by id)."""
        return RemoteCommand(self.node, kolla_version_of(self.config.kolla_of(self.node), image), f"Glance version of image {image[:12]}")

    def installed_version(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("installed_version"), "installed Glance version")

    def read_config(self) -> RemoteCommand:
        return RemoteCommand(self.node, self._cmd("read_config"), "read glance-api.conf")

    def rollback(self) -> RemoteCommand | None:
        if not self.templates.rollback:
            return None
        return RemoteCommand(self.node, self._t(self.templates.rollback), "reinstall the old release", changes=True)

    def manage(self, *args: str, changes: bool = False, purpose: str = "", timeout: float | None = None) -> RemoteCommand:
        text = f"{self._cmd('glance_manage')} {quote_args(*args)}"
        return RemoteCommand(self.node, text, purpose or f"glance-manage {' '.join(args)}", changes=changes, timeout=timeout)

    def _ddl_timeout(self) -> float:
        """expand/migrate/contract are never cut by the generic command timeout mid-DDL."""
        return self.templates.manage_timeout or NO_TIMEOUT

    def db_check(self) -> RemoteCommand:
        return self.manage("db", "check", purpose="which migration step is next")

    def db_version(self) -> RemoteCommand:
        return self.manage("db", "version", purpose="current alembic heads")

    def db_expand(self) -> RemoteCommand:
        return self.manage("db", "expand", changes=True, purpose="expand the database schema", timeout=self._ddl_timeout())

    def db_migrate(self) -> RemoteCommand:
        return self.manage("db", "migrate", changes=True, purpose="run the data migrations", timeout=self._ddl_timeout())

    def db_contract(self) -> RemoteCommand:
        return self.manage("db", "contract", changes=True, purpose="contract the database schema", timeout=self._ddl_timeout())

