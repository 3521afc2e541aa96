"""The explorer's "looks for" view: the picture `FeatureVisualizer.optimize` makes for the
selected channel, optimised on the explorer's worker and shown as it refines (`LooksForJob`;
its recipe is `looks_for_recipe`'s).

- **Started** by the view's "Looks for" button, a double click on a grid tile, or
  `FeatureExplorer.run_looks_for()`; a `Message.LOOKS_FOR` from the front end.
- **Live.** A partial picture every `PROGRESS_EVERY` steps (at most every
  `_PUBLISH_INTERVAL_S`; the first one always), with the step count in `progress` / `status`.
- **Device defaults.** On CUDA the full recipe (512 steps at the model's input size); elsewhere
  a 128-step preview with `model_size=128` (about 14 s for resnet50 `layer3` on a 2-core CPU).
  `looks_for_steps` and `looks_for_options` (any `optimize` recipe option) override them.
- **Cached** per (layer, channel, settings, device, weights' version): a channel asked for again
  is shown at once, without work. The picture does not depend on the input image.
- **Cancel / follow.** Cancel stops it (the partial picture stays, marked cancelled, and is not
  cached). Selecting another channel while it runs replaces it with that channel's run (or its
  cached picture); a layer or image change stops it, and it resumes for the channel shown next.
"""

from __future__ import annotations

from collections import OrderedDict

import traitlets as t

from ..optimize.optimizer import OptimizationResult
from .job_status import JobStatus
from .looks_for_recipe import PROGRESS_EVERY, looks_for_settings
from .protocol import JobState
from .traits import ExplorerTraits
from .views import looks_for_view
from .worker import Job, Throttle

__all__ = ["LooksForJob"]

_PUBLISH_INTERVAL_S = 0.2  # partial pictures sent to the view at most this often
_CACHE_SIZE = 64


class LooksForJob:
    """The "looks for" runs of `widget`: the cache, the run asked for and the picture shown,
    the observer of `looks_for_steps` / `looks_for_options`, and the `_looks_for` payload."""

    def __init__(self, widget: ExplorerTraits, status: JobStatus) -> None:
        self.w, self.status = widget, status
        self.cache: OrderedDict[tuple, OptimizationResult] = OrderedDict()
        self.wanted: tuple | None = None  # the key of the latest run asked for
        self.shown: OptimizationResult | None = None  # what `_looks_for` shows
        self.resume = False  # a run stopped by a view job: run again for the channel it shows
        widget.observe(self._on_settings, names=["looks_for_steps", "looks_for_options"])

    def _on_settings(self, change: t.Bunch) -> None:
        w = self.w
        with w._lock:
            if w._pending_request() is None:
                with w._quiet(), w.hold_sync():
                    self.show()

    def asked(self) -> tuple:
        """What the view asks for: the shown layer's selected channel under the current
        settings, on the current device."""
        w = self.w
        device = w._viz.device
        settings = looks_for_settings(device.type, w.looks_for_steps, dict(w.looks_for_options))
        return (w._features_layer, w.channel, repr(sorted(settings.items())), str(device))

    def key(self) -> tuple:
        """The cache key: `asked()` and the weights' version."""
        return (*self.asked(), self.w._viz.features.model_version())

    def submit(self) -> None:
        """Show the selected channel's cached picture, or optimise one in the background."""
        w = self.w
        with w._lock:
            with w._quiet():
                w.error = ""
            pending = w._pending_request() is not None
            if not pending and w._features is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            key = None if pending else self.key()
            if key is not None and key in self.cache:
                self.cache.move_to_end(key)
                with w._quiet(), w.hold_sync():
                    self.publish(self.cache[key])
                return
            self.wanted = key
            w._worker.submit(JobState.LOOKS_FOR, self._run, self.status.report)

    def pause(self) -> None:
        """Stop a queued or running run (a view job needs the worker); it runs again, for the
        channel then selected, once the view is shown (`show`)."""
        w = self.w
        if w._worker.pending(JobState.LOOKS_FOR):
            self.resume = True
        w._worker.invalidate(JobState.LOOKS_FOR)

    def cancel(self) -> None:
        """Stop a queued or running run; its partial picture stays, marked cancelled."""
        w = self.w
        self.resume = False
        running = w._worker.pending(JobState.LOOKS_FOR)
        w._worker.invalidate(JobState.LOOKS_FOR)
        if running and w._looks_for and not w._looks_for.get("complete"):
            with w._quiet():
                w._outbox.update("_looks_for", cancelled=True)

    def show(self) -> None:
        """After a channel, layer or settings change (under the lock, quietly): the selected
        channel's cached picture, else its running run's latest, else none. A run for another
        channel that is queued or running (or paused by a view job) is replaced by one for
        this channel."""
        w = self.w
        if w._features is None:
            return
        key = self.key()
        follow = self.resume or (w._worker.pending(JobState.LOOKS_FOR) and self.wanted != key)
        self.resume = False
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.move_to_end(key)
            if follow:
                w._worker.invalidate(JobState.LOOKS_FOR)
            self.publish(cached)
        elif follow:
            self.clear()
            self.wanted = key
            w._worker.submit(JobState.LOOKS_FOR, self._run, self.status.report)
        elif not (w._worker.pending(JobState.LOOKS_FOR) and self.wanted == key):
            self.clear()  # (a running run for this channel sends its own)

    def publish(self, result: OptimizationResult, cancelled: bool = False) -> None:
        """Set the `_looks_for` payload (inside `hold_sync()`, quietly)."""
        w = self.w
        self.shown = result
        w._outbox.set("_looks_for", *looks_for_view(result, w._viz.device.type, cancelled))

    def clear(self) -> None:
        w = self.w
        self.shown = None
        if w._looks_for:
            w._outbox.set("_looks_for", b"", {})

    def _run(self, job: Job) -> None:
        w = self.w
        with w._lock:
            if w._features is None:
                raise ValueError("the layer's features are not ready; select a layer first.")
            viz, layer, channel = w._viz, w._features_layer, w.channel
            key = self.key()
            settings = looks_for_settings(
                viz.device.type, w.looks_for_steps, dict(w.looks_for_options)
            )
            self.wanted = key
            cached = self.cache.get(key)
            if cached is not None:  # asked for twice: the first run made it
                with w._quiet(), w.hold_sync():
                    self.publish(cached)
                return
        steps = settings["steps"]
        self.status.start(job, f"looks for: {layer} ch {channel}, step 0/{steps}…", 0.0)
        throttle = Throttle(_PUBLISH_INTERVAL_S)

        def on_progress(step: int, total: int, partial: OptimizationResult) -> None:
            if not throttle.due(step, total):
                return
            with w._lock:
                if job.current:
                    with w._quiet(), w.hold_sync():
                        w.progress = step / total
                        w.status = f"looks for: {layer} ch {channel}, step {step}/{total}…"
                        if self.asked() == key[:-1]:  # though the user may train meanwhile
                            self.publish(partial)

        result = viz.optimize(
            layer,
            channel,
            on_progress=on_progress,
            should_stop=job.stale,
            progress=False,  # the widget shows its own
            progress_every=PROGRESS_EVERY,
            **settings,
        )
        with w._lock:
            self.cache[key] = result
            while len(self.cache) > _CACHE_SIZE:
                self.cache.popitem(last=False)
            # Shown if the view still asks for it, though the user may have trained meanwhile
            # (the weights' version moved): a later ask runs it again.
            if job.current and self.asked() == key[:-1]:
                with w._quiet(), w.hold_sync():
                    self.publish(result)
