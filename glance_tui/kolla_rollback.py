"""A Kolla node's rollback: its container re-created on the image it ran before this run's upgrade.

The upgrade re-creates the stopped container on the target image (``node.containers``); the old
image stays on the node. So a rollback, valid until contract, is the same re-create onto the old
image's id — which only this run can know: it is journaled (``RunState.prior_images``) right
before the re-create. A container on the target image whose old image this run never saw is
refused (before anything changes), never guessed from a tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glance_tui.errors import GlanceTuiError
from glance_tui.node.containers import read_container

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context


async def remember_prior_image(ctx: "Context", node: str) -> None:
    """The image the node's container runs before its re-create, journaled once per run (a resumed
    re-create keeps the first)."""
    if node in ctx.state.prior_images:
        return
    reading = await read_container(ctx.run, ctx.commands(node))
    box = reading.container
    if box is not None and reading.target_id is not None and box.image != reading.target_id:
        ctx.state.prior_images[node] = box.image
        ctx.save_state()


async def rollback_image(ctx: "Context", node: str) -> str | None:
    """The image the rollback re-creates the container on; None when it still runs an image other
    than the target (nothing to re-create). :class:`GlanceTuiError` when it runs the target image
    and this run never saw what it ran before, when that image is gone, or when nothing can be read."""
    prior = ctx.state.prior_images.get(node)
    reading = await read_container(ctx.run, ctx.commands(node), prior)
    if reading.container_error or reading.target_error or reading.container is None:
        raise GlanceTuiError(f"rollback of {node} refused: {reading.note}", fix="look at the container on the node, then retry")
    if prior is not None:
        if reading.target_id is None:
            raise GlanceTuiError(f"rollback of {node} refused: the image it ran before ({prior[:12]}) is no longer on the node",
                                 fix="pull the old release's image again (or re-deploy it with kolla-ansible), then retry")
        return prior
    target = await read_container(ctx.run, ctx.commands(node))
    if target.target_error or target.target_id is None or target.container is None or target.container.image == target.target_id:
        raise GlanceTuiError(f"rollback of {node} refused: its container runs the target image and this run did not see the image it ran before",
                             fix="re-deploy the old release's image with kolla-ansible (its old tag), then retry")
    return None
