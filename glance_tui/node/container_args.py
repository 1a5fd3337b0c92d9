"""The ``{engine} create`` arguments that re-create a Kolla container from its own inspect JSON.

Every setting ``docker run``/``podman create`` can express is carried — kolla-ansible's (network,
volumes, environment, labels, privileges, ``cap_add``, ``security_opt``, ``ipc``/``pid``/``cgroupns``
modes, ``tmpfs``, ulimits and the other ``dimensions``, health check, ``tty``) and an operator's (log
driver and options, hostname, annotations, devices, shm size, DNS, extra hosts, stop signal and
timeout, init, working directory, user). What the engine derives itself is not passed (a hostname
that is the container id's prefix or the host's name under ``--network host``, podman's own
annotations and default log path, env the engine adds). A setting that cannot be carried faithfully
is a ``ValueError`` naming it: the re-create is refused, never done without it.

docker and podman print inspect differently (podman: ``Config.Annotations``, ``LogConfig.Path``/
``Size``/``Tag``, a numeric ``StopSignal``, ``CgroupMode``; docker: ``HostConfig.Annotations``,
``LogConfig.Config``, ``CgroupnsMode``): both shapes are read.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

_PROPAGATION = ("shared", "rshared", "slave", "rslave")
# Set by the engine in every container (podman: container=podman, HOSTNAME): not the operator's.
_ENGINE_ENV = ("container", "HOSTNAME")
# Annotations podman writes itself from other flags (init, privileged, label=disable, --rm, a tty).
_ENGINE_ANNOTATIONS = ("io.podman.annotations.", "io.kubernetes.cri-o.", "io.container.manager")
_NAMESPACE_MODES = {"PidMode": "--pid", "UTSMode": "--uts", "UsernsMode": "--userns"}
_DEFAULT_NAMESPACE = ("", "private", "default")


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is not a list of strings")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _number(value: Any, what: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} is not a whole number")
    return value


def words(value: Any, what: str) -> list[str]:
    """An entrypoint or command as a list (podman 4 prints a string, docker a list)."""
    return value.split() if isinstance(value, str) else _strings(value, what)


def _seconds(ns: Any) -> str:
    return f"{ns / 1e9:g}s"


def _plain(text: str, what: str) -> str:
    if any(c in text for c in ":,\n"):
        raise ValueError(f"cannot carry {what} {text[:60]!r}: ':' or ',' in it")
    return text


def _mounts(raw: dict[str, Any], tmpfs_done: set[str]) -> list[str]:
    out: list[str] = []
    mounts = raw.get("Mounts") or []
    if not isinstance(mounts, list):
        raise ValueError("Mounts is not a list")
    for m in mounts:
        if not isinstance(m, dict):
            raise ValueError("a mount is not an object")
        kind, dst = m.get("Type"), m.get("Destination")
        src = m.get("Source") if kind == "bind" else m.get("Name")
        if kind == "tmpfs" and isinstance(dst, str):
            if dst not in tmpfs_done:
                out += ["--tmpfs", dst]
            continue
        if kind not in ("bind", "volume") or not isinstance(src, str) or not isinstance(dst, str) or not src or not dst:
            raise ValueError(f"cannot carry mount {str(m)[:80]}: only bind mounts, named volumes and tmpfs are")
        if any(c in src + dst for c in ":,\n"):
            raise ValueError(f"cannot carry mount {src[:60]} → {dst[:60]}: ':' or ',' in a path")
        opts = [o for o in (("ro" if m.get("RW") is False else ""), (m.get("Propagation") if m.get("Propagation") in _PROPAGATION else "")) if o]
        out += ["--volume", f"{src}:{dst}" + (f":{','.join(opts)}" if opts else "")]
    return out


def _namespaces(host: dict[str, Any]) -> list[str]:
    """``--ipc``/``--pid``/``--uts``/``--userns``/``--cgroupns`` when not the engine's private default;
    ``--shm-size`` where the container has its own IPC namespace."""
    out: list[str] = []
    ipc = host.get("IpcMode") or ""
    if not isinstance(ipc, str):
        raise ValueError("HostConfig.IpcMode is not a string")
    if ipc:  # explicit even when private/shareable: the daemon's default-ipc-mode may differ
        out += ["--ipc", ipc]
    for key, flag in _NAMESPACE_MODES.items():
        mode = host.get(key) or ""
        if not isinstance(mode, str):
            raise ValueError(f"HostConfig.{key} is not a string")
        if mode not in _DEFAULT_NAMESPACE:
            out += [flag, mode]
    cgroupns = host.get("CgroupnsMode", host.get("CgroupMode")) or ""  # docker / podman
    if cgroupns not in ("", "host", "private"):
        raise ValueError(f"cannot carry the cgroup namespace mode {str(cgroupns)[:40]!r}")
    if cgroupns:
        out += ["--cgroupns", cgroupns]
    cgroups = host.get("Cgroups") or ""  # podman only: whether the container gets its own cgroup
    if cgroups not in ("", "default", "enabled"):
        out += ["--cgroups", str(cgroups)]
    shm = _number(host.get("ShmSize"), "HostConfig.ShmSize")
    if shm > 0 and ipc in ("", "private", "shareable"):
        out += ["--shm-size", str(shm)]
    return out


def _resources(host: dict[str, Any]) -> list[str]:
    """kolla-ansible's ``dimensions`` (CPU, memory, block I/O, ulimits) and the pids limit."""
    out: list[str] = []
    n = {k: _number(host.get(k), f"HostConfig.{k}") for k in (
        "Memory", "MemoryReservation", "MemorySwap", "NanoCpus", "CpuShares", "CpuPeriod", "CpuQuota", "BlkioWeight",
        "PidsLimit", "OomScoreAdj", "KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpuCount", "CpuPercent",
        "IOMaximumIOps", "IOMaximumBandwidth", "DiskQuota")}
    for key in ("KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth", "DiskQuota"):
        if n[key] > 0:
            raise ValueError(f"HostConfig.{key} is set: it is not carried; re-create the container with your deployment tool")
    for key in ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "DeviceCgroupRules"):
        if host.get(key):
            raise ValueError(f"HostConfig.{key} is set: it is not carried; re-create the container with your deployment tool")
    if n["Memory"] > 0:
        out += ["--memory", str(n["Memory"])]
        if n["MemorySwap"] != 0:
            out += ["--memory-swap", str(n["MemorySwap"])]
    elif n["MemorySwap"] > 0:
        raise ValueError("HostConfig.MemorySwap is set without a memory limit: it is not carried")
    for key, flag in (("MemoryReservation", "--memory-reservation"), ("CpuShares", "--cpu-shares"), ("BlkioWeight", "--blkio-weight"),
                      ("PidsLimit", "--pids-limit")):
        if n[key] > 0:
            out += [flag, str(n[key])]
    if n["NanoCpus"] > 0:
        out += ["--cpus", f"{n['NanoCpus'] / 1e9:g}"]
    else:
        out += [a for key, flag in (("CpuPeriod", "--cpu-period"), ("CpuQuota", "--cpu-quota")) if n[key] > 0 for a in (flag, str(n[key]))]
    if n["OomScoreAdj"] != 0:
        out += ["--oom-score-adj", str(n["OomScoreAdj"])]
    for key, flag in (("CpusetCpus", "--cpuset-cpus"), ("CpusetMems", "--cpuset-mems"), ("CgroupParent", "--cgroup-parent")):
        value = host.get(key) or ""
        if not isinstance(value, str):
            raise ValueError(f"HostConfig.{key} is not a string")
        if value:
            out += [flag, value]
    swappiness = host.get("MemorySwappiness")
    if isinstance(swappiness, int) and 0 < swappiness <= 100:
        out += ["--memory-swappiness", str(swappiness)]  # podman prints 0 for "not set": 0 is not carried
    if host.get("OomKillDisable") is True:
        out.append("--oom-kill-disable")
    for u in host.get("Ulimits") or []:
        if not isinstance(u, dict) or not isinstance(u.get("Name"), str):
            raise ValueError("HostConfig.Ulimits: an entry without a name")
        name = u["Name"].lower().removeprefix("rlimit_")
        soft, hard = _number(u.get("Soft"), f"ulimit {name}"), _number(u.get("Hard"), f"ulimit {name}")
        out += ["--ulimit", f"{_plain(name, 'ulimit')}={soft}:{hard}"]
    return out


def _log(host: dict[str, Any], container_id: str) -> list[str]:
    """The log driver and its options (docker: ``LogConfig.Config``; podman: ``Path``/``Size``/``Tag``
    besides it — its default path, under the container's own directory, is the engine's)."""
    log = _object(host.get("LogConfig"), "HostConfig.LogConfig")
    out: list[str] = []
    kind = log.get("Type") or ""
    if not isinstance(kind, str):
        raise ValueError("HostConfig.LogConfig.Type is not a string")
    if kind:
        out += ["--log-driver", kind]
    opts = dict(_object(log.get("Config"), "HostConfig.LogConfig.Config"))
    path, size, tag = (log.get(k) or "" for k in ("Path", "Size", "Tag"))
    if path and not (container_id and f"/{container_id}/" in path):
        opts.setdefault("path", path)
    if size and size not in ("0B", "0", "-1"):
        opts.setdefault("max-size", size)
    if tag:
        opts.setdefault("tag", tag)
    for key, value in sorted(opts.items()):
        if not isinstance(value, str):
            raise ValueError(f"log option {str(key)[:40]} is not a string")
        out += ["--log-opt", f"{key}={value}"]
    return out


def _host_name(raw: dict[str, Any], config: dict[str, Any], host: dict[str, Any], node_host_name: str | None) -> list[str]:
    """``--hostname`` only when the operator chose it: not the id's prefix (the engine's default), not
    the host's name under host networking or a host UTS namespace (the engine's too)."""
    name, domain = config.get("Hostname") or "", config.get("Domainname") or ""
    if not isinstance(name, str):
        raise ValueError("Config.Hostname is not a string")
    if domain:
        raise ValueError(f"Config.Domainname is set ({str(domain)[:40]}): it is not carried")
    container_id = str(raw.get("Id") or "")
    if not name or (len(name) >= 12 and container_id.startswith(name)) or host.get("UTSMode") == "host":
        return []
    if host.get("NetworkMode") == "host" or str(host.get("NetworkMode") or "").startswith("container:"):
        if node_host_name is None:
            raise ValueError(f"cannot tell whether hostname {name[:60]!r} is the node's own name (it was not read)")
        if name == node_host_name:
            return []
    return ["--hostname", name]


def _host_lists(host: dict[str, Any], config: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, flag in (("CapAdd", "--cap-add"), ("CapDrop", "--cap-drop"), ("Dns", "--dns"), ("DnsOptions", "--dns-option"),
                      ("DnsSearch", "--dns-search"), ("ExtraHosts", "--add-host"), ("GroupAdd", "--group-add"), ("VolumesFrom", "--volumes-from")):
        for value in _strings(host.get(key), f"HostConfig.{key}"):
            out += [flag, value]
    for value in _strings(host.get("SecurityOpt"), "HostConfig.SecurityOpt"):
        if value.startswith(("seccomp=", "seccomp:")) and value[8:] not in ("unconfined", "") and not value[8:].startswith("/"):
            raise ValueError("HostConfig.SecurityOpt holds a seccomp profile's content: it is not carried (only its file name could be)")
        out += ["--security-opt", value]
    for d in host.get("Devices") or []:
        if not isinstance(d, dict) or not isinstance(d.get("PathOnHost"), str) or not isinstance(d.get("PathInContainer"), str):
            raise ValueError("HostConfig.Devices: an entry without its paths")
        perms = d.get("CgroupPermissions") or ""
        out += ["--device", ":".join([_plain(d["PathOnHost"], "device"), _plain(d["PathInContainer"], "device"), *([perms] if perms else [])])]
    for path, opts in sorted(_object(host.get("Tmpfs"), "HostConfig.Tmpfs").items()):
        out += ["--tmpfs", f"{_plain(path, 'tmpfs')}:{opts}" if opts else path]
    for key, value in sorted(_object(host.get("Sysctls"), "HostConfig.Sysctls").items()):
        out += ["--sysctl", f"{key}={value}"]
    annotations = {**_object(host.get("Annotations"), "HostConfig.Annotations"), **_object(config.get("Annotations"), "Config.Annotations")}
    for key, value in sorted(annotations.items()):
        if not key.startswith(_ENGINE_ANNOTATIONS):
            out += ["--annotation", f"{key}={value}"]
    if host.get("PortBindings"):
        raise ValueError("HostConfig.PortBindings is set: published ports are not carried; re-create the container with your deployment tool")
    for key in ("Links", "VolumeDriver", "CgroupConf", "StorageOpt", "DeviceRequests", "Cgroup"):
        if host.get(key):
            raise ValueError(f"HostConfig.{key} is set: it is not carried; re-create the container with your deployment tool")
    runtime = host.get("Runtime") or ""
    if runtime not in ("", "runc", "oci"):  # docker's default runtime / podman's word for the configured one
        out += ["--runtime", str(runtime)]
    for key, flag in (("Init", "--init"), ("ReadonlyRootfs", "--read-only"), ("Privileged", "--privileged"), ("AutoRemove", "--rm")):
        if host.get(key) is True:
            out.append(flag)
    for key, flag in (("Tty", "--tty"), ("OpenStdin", "--interactive")):
        if config.get(key) is True:
            out.append(flag)
    # podman's own: umask, a run timeout, how systemd is notified (its defaults not passed)
    for key, flag, default in (("Umask", "--umask", "0022"), ("sdNotifyMode", "--sdnotify", "container")):
        value = config.get(key) or ""
        if value and value != default:
            out += [flag, str(value)]
    if _number(config.get("Timeout"), "Config.Timeout") > 0:
        out += ["--timeout", str(config["Timeout"])]
    return out


def _signal_number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value:
        text = value.upper()
        if text.isdigit():
            return int(text)
        try:
            return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
        except KeyError:
            raise ValueError(f"unknown stop signal {value[:20]!r}") from None
    return None


def _host_options(host: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    out: list[str] = []
    network = host.get("NetworkMode")
    if isinstance(network, str) and network not in ("", "default", "bridge"):
        out += ["--network", network]
    networks = _object(_object(raw.get("NetworkSettings"), "NetworkSettings").get("Networks"), "NetworkSettings.Networks")
    for net, settings in networks.items():
        if isinstance(settings, dict) and settings.get("IPAMConfig"):
            raise ValueError(f"network {str(net)[:40]} has a fixed address (--ip): it is not carried; re-create the container with your deployment tool")
    policy = host.get("RestartPolicy") or {}
    name = policy.get("Name") if isinstance(policy, dict) else None
    if name and name != "no":
        retries = policy.get("MaximumRetryCount")
        out += ["--restart", f"{name}:{retries}" if name == "on-failure" and isinstance(retries, int) and retries > 0 else str(name)]
    return out


def _health(config: dict[str, Any], image: dict[str, Any]) -> list[str]:
    out: list[str] = []
    health = config.get("Healthcheck")
    if isinstance(health, dict) and health != image.get("Healthcheck"):
        test = _strings(health.get("Test"), "Config.Healthcheck.Test")
        if test[:1] == ["NONE"]:
            out.append("--no-healthcheck")
        elif test:
            out += ["--health-cmd", test[1] if test[0] == "CMD-SHELL" and len(test) == 2 else " ".join(test[1:])]
            for key, flag in (("Interval", "--health-interval"), ("Timeout", "--health-timeout"), ("StartPeriod", "--health-start-period")):
                if isinstance(health.get(key), int) and health[key] > 0:
                    out += [flag, _seconds(health[key])]
            if isinstance(health.get("Retries"), int) and health["Retries"] > 0:
                out += ["--health-retries", str(health["Retries"])]
    action = config.get("HealthcheckOnFailureAction") or ""
    if action not in ("", "none"):
        out += ["--health-on-failure", str(action)]
    return out


def _config_options(config: dict[str, Any], image: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What the container's own configuration adds to its image's: options, and a command if it has its own."""
    out: list[str] = []
    image_env = set(_strings(image.get("Env"), "the image's Env"))
    for item in _strings(config.get("Env"), "Config.Env"):
        if item not in image_env and item.partition("=")[0] not in _ENGINE_ENV:
            out += ["--env", item]
    labels, image_labels = config.get("Labels") or {}, image.get("Labels") or {}
    if not isinstance(labels, dict) or not isinstance(image_labels, dict):
        raise ValueError("Labels is not an object")
    for key, value in sorted(labels.items()):
        if image_labels.get(key) != value:
            out += ["--label", f"{key}={value}"]
    for key, flag, default in (("User", "--user", ""), ("WorkingDir", "--workdir", "/")):
        value = config.get(key)
        if isinstance(value, str) and value and value != (image.get(key) or default):
            out += [flag, value]
    out += _health(config, image)
    stop = config.get("StopTimeout")
    if isinstance(stop, int) and not isinstance(stop, bool) and stop > 0:
        out += ["--stop-timeout", str(stop)]
    own, base = _signal_number(config.get("StopSignal")), _signal_number(image.get("StopSignal"))
    if own is not None and own != (base or signal.SIGTERM.value):
        out += ["--stop-signal", str(own)]
    if words(config.get("Entrypoint"), "Config.Entrypoint") != words(image.get("Entrypoint"), "the image's Entrypoint"):
        raise ValueError("the container has its own entrypoint: it is not carried; re-create the container with your deployment tool")
    command = words(config.get("Cmd"), "Config.Cmd")
    return out, (command if command != words(image.get("Cmd"), "the image's Cmd") else [])


def create_args(engine: str, raw: dict[str, Any], image_config: dict[str, Any], image: str, name: str,
                node_host_name: str | None = None) -> list[str]:
    """``{engine} create`` arguments for a container like ``raw`` (its inspect object) on ``image``,
    named ``name``; ``node_host_name`` is the node's own name (a hostname equal to it under host
    networking is the engine's). ValueError names what cannot be carried."""
    host, config = _object(raw.get("HostConfig"), "HostConfig"), _object(raw.get("Config"), "Config")
    options, command = _config_options(config, image_config)
    tmpfs = set(_object(host.get("Tmpfs"), "HostConfig.Tmpfs"))
    parts: list[Callable[[], list[str]]] = [
        lambda: _host_options(host, raw), lambda: _namespaces(host), lambda: _host_lists(host, config), lambda: _resources(host),
        lambda: _log(host, str(raw.get("Id") or "")), lambda: _host_name(raw, config, host, node_host_name), lambda: _mounts(raw, tmpfs)]
    return [engine, "create", "--name", name, *(a for part in parts for a in part()), *options, image, *command]
