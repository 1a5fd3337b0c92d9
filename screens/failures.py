"""One way for a failed background worker to reach the operator (as harlequin does).

Textual sends ``Worker.StateChanged`` only to the node that started the worker, so each
worker-owning node mixes in :class:`ReportsFailedWorkers`, which forwards an ERROR to the app
as :class:`WorkerFailed`; the app's single handler shows it. A poller that keeps failing the
same way is shown once (not at every poll), and again when it fails differently after working.
"""

from __future__ import annotations

from textual.message import Message
from textual.worker import Worker, WorkerState

from glance_tui.api import redact


class WorkerFailed(Message):
    """A background worker ended with an exception."""

    def __init__(self, group: str, what: str, error: BaseException | None) -> None:
        super().__init__()
        self.group, self.what, self.error = group, what, error

    @property
    def text(self) -> str:
        exc = self.error
        detail = getattr(exc, "message", None) or (f"{exc.__class__.__name__}: {exc}" if exc is not None else "unknown error")
        return redact(f"{self.what} failed — {detail}")


class WorkerSucceeded(Message):
    """A worker of ``group`` finished normally (a failing poller has recovered)."""

    def __init__(self, group: str) -> None:
        super().__init__()
        self.group = group


class ReportsFailedWorkers:
    """Mixin for a Textual node that runs workers: forwards their end state to the app."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            self.app.post_message(WorkerFailed(worker.group, worker.description or worker.name or worker.group, worker.error))  # type: ignore[attr-defined]
        elif event.state == WorkerState.SUCCESS:
            self.app.post_message(WorkerSucceeded(worker.group))  # type: ignore[attr-defined]


class FailureLog:
    """What was last shown per worker group, so a repeating failure is shown once."""

    def __init__(self) -> None:
        self.shown: dict[str, str] = {}

    def should_show(self, message: WorkerFailed) -> bool:
        if self.shown.get(message.group) == message.text:
            return False
        self.shown[message.group] = message.text
        return True

    def recovered(self, group: str) -> bool:
        """True if ``group`` had a failure on show (it works again now)."""
        return self.shown.pop(group, None) is not None
