"""Images staged on a node but not yet imported: named before the node stops, and its staging
directory checked after its upgrade.

``PUT /v2/images/{id}/stage`` (glance-direct) keeps the data in the node's local staging
directory (a file named by the image id) and records the node on the image
(``os_glance_stage_host``); the import is requested later, and every other node proxies it to
that node. While the node is down such an import fails ("Stage host is unavailable"); if the
upgrade loses the staging directory, the data is gone for good and the image stays
``uploading``. So before the stop the staged images and the directory's files are listed
(a notice, and the ``staged`` record), and after the upgrade each listed file must still be
there, else the upgrade fails with the files it lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glance_tui.errors import GlanceTuiError
from glance_tui.events import Notice
from glance_tui.import_work import ImportItem
from glance_tui.inflight import InFlight, StagingUnknown, import_conf, list_staging
from glance_tui.node.glance_conf import ImportConf

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context

async def before_stop(ctx: "Context", node: str, work: InFlight, *, owed: bool = True) -> None:
    """List what is staged on ``node`` (journaled, a notice if any) and, when an upgrade follows
    (``owed``), remember the staging directory's files for :func:`after_upgrade`."""
    try:
        conf = await import_conf(ctx, node)
    except ValueError as exc:
        raise StagingUnknown(f"cannot tell {node}'s staging directory: {exc}", fix="make read_config print the node's glance-api.conf (on a Kolla node, `container inspect` must answer too), then retry") from None
    staged = list(work.imports.staged if work.imports else ())
    if conf.unlisted:
        _unlisted(ctx, node, conf, staged, owed)
        return
    exists, names = await list_staging(ctx, node, conf.staging_dir)
    ids = {i.image_id for i in staged}
    files = sorted(n for n in names if n.split(".", 1)[0] in ids)
    if owed:
        ctx.state.staging[node] = {"dir": conf.staging_dir, "existed": exists, "files": files}
        ctx.save_state()
    where = {"container_dir": conf.in_container} if conf.in_container else {}  # a Kolla node: the directory as its container names it
    ctx.journal.write("staged", node=node, staging_dir=conf.staging_dir, **where, dir_exists=exists, files=files, imports=[i.as_dict() for i in staged])
    if staged:
        shown = ", ".join(f"{i.image_id} ({i.where})" for i in staged[:5]) + (f" and {len(staged) - 5} more" if len(staged) > 5 else "")
        ctx.emit(Notice("warning", f"{len(staged)} image(s) staged but not imported may be on {node}: {shown}. While {node} is down, an import "
                                   f"requested for them fails (Glance proxies it to {node}: 'Stage host is unavailable'); their data in "
                                   f"{conf.staging_dir} must survive the upgrade{' (checked after it)' if owed else ''}. Fix: after {node} is back, the owner "
                                   f"requests the import again (POST /v2/images/ID/import, glance-direct)."))


VOLUME_FIX = ("put the staging directory on a volume (Kolla: [os_glance_staging_store] filesystem_store_datadir under /var/lib/glance, "
              "the glance volume; or mount one on it), then retry")


def _unlisted(ctx: "Context", node: str, conf: ImportConf, staged: list[ImportItem], owed: bool) -> None:
    """A Kolla node whose staging directory is in its container's own layer (or a tmpfs): nothing
    there can be listed from the host, and the upgrade's re-create discards it. With images
    that may be staged there, an upgrade is refused; else the operator is warned."""
    ctx.journal.write("staged", node=node, staging_dir=conf.in_container or conf.staging_dir, dir_exists=None, files=None,
                      unlisted=conf.unlisted, imports=[i.as_dict() for i in staged])
    if staged and owed:
        shown = ", ".join(i.image_id for i in staged[:5]) + (f" and {len(staged) - 5} more" if len(staged) > 5 else "")
        raise StagingAtRisk(f"{len(staged)} image(s) staged but not imported may be on {node} ({shown}), whose staging data the upgrade "
                            f"would lose: {conf.unlisted}", fix=f"let their owners import (or delete) them first, or {VOLUME_FIX}")
    ctx.emit(Notice("warning", f"{node}: {conf.unlisted}; image data staged there cannot be listed and is lost when the container "
                               f"is re-created (the upgrade). Fix: {VOLUME_FIX}."))


async def after_upgrade(ctx: "Context", node: str) -> None:
    """Every staged file listed before the stop is still in the staging directory; else :class:`StagingLost`."""
    seen = ctx.state.staging.get(node)
    if not seen:
        return
    directory = str(seen.get("dir"))
    exists, names = await list_staging(ctx, node, directory)
    lost = await _still_owed(ctx, [f for f in seen.get("files") or [] if f not in names])
    if seen.get("existed") and not exists:
        lost = lost or ["(the directory itself)"]
    if lost:
        ctx.journal.write("staged.lost", node=node, staging_dir=directory, files=lost)
        raise StagingLost(f"the upgrade of {node} lost staged image data in {directory}: {', '.join(lost[:10])}",
                          fix=f"restore {directory} on {node} from before the upgrade (the upgrade must keep the staging directory), then retry; "
                              "or, if the data is gone, delete those images (their owners create, stage and import them again), then retry")
    ctx.journal.write("staged.kept", node=node, staging_dir=directory, files=[f for f in seen.get("files") or [] if f in names])
    ctx.state.staging.pop(node, None)
    ctx.save_state()


async def _still_owed(ctx: "Context", files: list[str]) -> list[str]:
    """The missing files whose image is still ``uploading`` (read now): an image its owner has
    deleted (or staged again elsewhere) since is no longer owed. A failed read owes them all."""
    if not files:
        return []
    ids = sorted({f.split(".", 1)[0] for f in files})
    marks = ", ".join(["%s"] * len(ids))
    try:
        rows = await ctx.cluster.db.rows(f"SELECT id FROM images WHERE deleted = 0 AND status = 'uploading' AND id IN ({marks})", tuple(ids))
    except GlanceTuiError:
        return files
    waiting = {str(r[0]) for r in rows}
    return [f for f in files if f.split(".", 1)[0] in waiting]


class StagingLost(GlanceTuiError):
    """Staged image data did not survive the upgrade."""


class StagingAtRisk(GlanceTuiError):
    """Staged image data would not survive the upgrade (a staging directory on no volume)."""
