"""The panels' runs (`panels.PANELS`) on the explorer's worker: after each view, every panel
whose inputs changed computes its result (the latest request wins, per panel) and publishes
its payload; `save_png` draws the result shown."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from matplotlib.figure import Figure

from .job_status import JobStatus
from .panels import Panel, PanelView
from .protocol import JobState
from .worker import Job, Worker

__all__ = ["PanelRunner"]


class PanelRunner:
    """Runs `panels` for the view `current()` returns (None: no view yet) on `worker`, and
    hands each payload to `publish(trait, data, meta)` (called under `lock`)."""

    def __init__(
        self,
        panels: Iterable[Panel],
        worker: Worker,
        lock: threading.RLock,
        status: JobStatus,
        current: Callable[[], PanelView | None],
        publish: Callable[[str, bytes, dict], None],
    ) -> None:
        self.panels = {panel.name: panel for panel in panels}
        self.worker, self.lock, self.status = worker, lock, status
        self.current, self.publish = current, publish
        self.wanted: dict[str, Hashable] = {}  # the inputs of each panel's latest run
        self.shown: dict[str, tuple[Hashable, PanelView, Any, dict]] = {}  # + result, meta

    def refresh(self) -> None:
        """After each view (under the lock): run every panel whose inputs changed."""
        view = self.current()
        if view is None:
            return
        for panel in self.panels.values():
            key = panel.depends_on(view)
            shown = self.shown.get(panel.name)
            kind = f"panel:{panel.name}"
            if (shown is not None and shown[0] == key) or (
                self.wanted.get(panel.name) == key and self.worker.pending(kind)
            ):
                continue
            self.wanted[panel.name] = key

            def run(job: Job, panel: Panel = panel, view: PanelView = view) -> None:
                self._run(job, panel, view)

            self.worker.submit(kind, run, self.status.report)

    def _run(self, job: Job, panel: Panel, view: PanelView) -> None:
        self.status.start(job, f"{panel.status}: {view.layer}…", state=JobState.PANEL)
        try:
            result = panel.compute(view)
            data, meta = panel.payload(view, result)
        except ValueError as exc:  # the panel says why (a layer it cannot show)
            result, (data, meta) = None, panel.note(view, str(exc))
        with self.lock:
            if job.current:
                self.shown[panel.name] = (panel.depends_on(view), view, result, meta)
                self.publish(panel.trait, data, meta)

    def figure(self, name: str) -> Figure:
        """The static picture of panel `name`'s result for the view shown."""
        panel = self.panels[name]
        with self.lock:
            view, shown = self.current(), self.shown.get(name)
            fresh = view is not None and shown is not None and shown[0] == panel.depends_on(view)
        if not fresh:
            raise ValueError(f"nothing to save yet: the {name} view is still being computed.")
        _, view, result, meta = shown
        if result is None:
            raise ValueError(f"no {name} view for {view.layer}: {meta.get('note', '')}")
        return panel.figure(view, result)
