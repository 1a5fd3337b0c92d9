"""How the nodes' kinds are written: ``[commands] kind`` (the most common kind), each other node's own
``kind``, and the kind tables (``[commands.kolla]``/``[commands.osa]`` for what every node of the kind
shares, ``[nodes.kolla]``/``[nodes.osa]`` for what one node has of its own).

What a node shows fills the table: Kolla's engine, container and image repository; the target tag
follows Kolla's tag convention (``<release>-<distro>``: the running tag with its release replaced by
the target release) — any other tag is a question. OpenStack-Ansible: init reached Glance at the
server's own address (inside its LXC container), so commands run there directly (``container = ""``)
with the venvs under the root the processes run from; the target venv's tag is OSA's own version, which
no node shows: a question.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from glance_tui.config import KollaConfig, OsaConfig
from glance_tui.init.discover import Discovery
from glance_tui.init.nodeprobe import NodeFindings

UNDECIDED_TAG = "unset-see-question"  # a tag no registry has: a pull fails, nothing is guessed


@dataclass
class KindPlan:
    kind: str | None  # [commands] kind; None: no node's kind is known
    node_kind: dict[str, str] = field(default_factory=dict)  # nodes whose kind differs from [commands] kind
    shared: dict[str, Any] = field(default_factory=dict)  # [commands.<kind>]
    own: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> [nodes.<its kind>]
    questions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def split_image(image: str) -> tuple[str, str]:
    """``repo/name:tag`` → (``repo/name``, ``tag``); no tag → (image, "")."""
    head, _, last = image.rpartition("/")
    name, sep, tag = last.partition(":")
    return (f"{head}/{name}" if head else name), (tag if sep else "")


def kolla_settings(f: NodeFindings, target: str | None, target_decided: bool) -> tuple[dict[str, Any], list[str]]:
    repository, tag = split_image((f.image or "").split("@", 1)[0])
    release = f.release
    questions = []
    follows = bool(release and (tag.startswith(release + "-") or tag == release))
    if target and follows and target_decided:
        target_tag = target + tag[len(release or ""):]
    elif follows:
        target_tag = UNDECIDED_TAG
        questions.append(f"which image tag is the target? It follows the target release, undecided (see [policy]): the running tag {tag} "
                         f"gives <target>{tag[len(release or ''):]}: set target_tag when you answer the target release")
    else:
        target_tag = UNDECIDED_TAG
        questions.append(f"which image tag is the target? The running tag {tag or '(none)'} does not start with the node's release "
                         f"({release or 'unknown'}), so the target's tag cannot follow from it: set target_tag")
    values = {"engine": f.engine, "container": f.container, "image": repository, "target_tag": target_tag}
    try:
        KollaConfig.model_validate(values)
    except Exception as exc:  # a repository or name the config refuses: ask rather than write it
        questions.append(f"the container's image {f.image!r} cannot be written as a Kolla image ({str(exc).splitlines()[-1][:160]}): set image and target_tag")
        values.update(image="unset.invalid/glance-api", target_tag=UNDECIDED_TAG)
    return values, questions


def osa_settings(f: NodeFindings) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {"container": "", "venv_root": f.venv_root or "/openstack/venvs", "venv_tag": UNDECIDED_TAG}
    try:
        OsaConfig.model_validate(values)
    except Exception:
        values["venv_root"] = "/openstack/venvs"
    return values, ["which venv is the target? OpenStack-Ansible names venvs glance-<its own release version> (e.g. glance-31.1.0), "
                    "which no node shows before the upgrade: set venv_tag"]


def plan_kinds(found: Discovery) -> KindPlan:
    read = [n for n in found.nodes if n.findings and not n.findings.problem and n.findings.kind]
    if not read:
        return KindPlan(None)
    counts = Counter(n.findings.kind for n in read if n.findings)
    main = counts.most_common(1)[0][0]
    plan = KindPlan(main)
    tables: dict[str, dict[str, Any]] = {}
    for n in read:
        f = n.findings
        assert f is not None and f.kind is not None
        if f.kind != main:
            plan.node_kind[n.name] = f.kind
        if f.kind == "kolla":
            tables[n.name], asked = kolla_settings(f, found.target.value, bool(found.target.value))
        elif f.kind == "osa":
            tables[n.name], asked = osa_settings(f)
        else:
            continue
        plan.questions += [q for q in asked if q not in plan.questions]
    same = [n.name for n in read if n.findings and n.findings.kind == main and n.name in tables]
    if same:
        keys = tables[same[0]].keys()
        plan.shared = {k: tables[same[0]][k] for k in keys if all(tables[s][k] == tables[same[0]][k] for s in same)}
    for name, table in tables.items():
        own = table if name in plan.node_kind else {k: v for k, v in table.items() if k not in plan.shared}
        if own:
            plan.own[name] = own
    return plan
