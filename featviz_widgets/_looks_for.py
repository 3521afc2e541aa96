"""The explorer's "looks for" view: the picture `FeatureVisualizer.optimize` makes for the
selected channel, optimised on the explorer's worker and shown as it refines. `LooksForAPI`
is `FeatureExplorer`'s side of it (a mixin), `LooksForJobs` the work.

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
from typing import TYPE_CHECKING, Any

import traitlets as t
from matplotlib.figure import Figure

from ._optimize import OptimizationResult
from ._protocol import JobState
from ._views import looks_for_view
from ._worker import Job, Throttle

if TYPE_CHECKING:
    from ._jobs import ExplorerJobs
    from ._view_jobs import ViewRequest
    from .widget import FeatureExplorer

__all__ = [
    "LOOKS_FOR_OPTIONS",
    "LooksForAPI",
    "LooksForJobs",
    "check_looks_for_options",
    "looks_for_figure",
    "looks_for_settings",
]

PREVIEW_STEPS = 128
"""Steps of the preview run on devices other than CUDA."""
FULL_STEPS = 512
"""Steps of the full recipe, on CUDA."""
PREVIEW_MODEL_SIZE = 128
"""The preview's model input size (about half the CPU time of 224 px)."""
PICTURE_SIZE = 128
PROGRESS_EVERY = 4
"""`optimize`'s `progress_every`: how often a partial picture is made."""
_PUBLISH_INTERVAL_S = 0.2  # partial pictures sent to the view at most this often
_CACHE_SIZE = 64

LOOKS_FOR_OPTIONS = (
    "size",
    "model_size",
    "lr",
    "seed",
    "fourier",
    "decorrelate",
    "transforms",
    "redirect_relu",
    "precision",
)
"""The `optimize` recipe options `looks_for_options` may set."""


def looks_for_settings(device_type: str, steps: int | None, options: dict[str, Any]) -> dict:
    """The `optimize` keyword arguments of a "looks for" run on `device_type`: the full recipe
    on CUDA, a preview elsewhere; `steps` (None: the device's default) and `options` win."""
    full = device_type == "cuda"
    settings: dict[str, Any] = {
        "steps": FULL_STEPS if full else PREVIEW_STEPS,
        "size": PICTURE_SIZE,
        "model_size": None if full else PREVIEW_MODEL_SIZE,
    }
    if steps is not None:
        settings["steps"] = steps
    settings.update(options)
    return settings


def check_looks_for_options(options: dict) -> dict:
    """`options` if every key is a recipe option `looks_for_options` may set, else ValueError
    (values are checked by `optimize` when it runs; a bad one shows in `error`)."""
    unknown = sorted(set(options) - set(LOOKS_FOR_OPTIONS))
    if unknown:
        raise ValueError(
            f"`looks_for_options` takes {list(LOOKS_FOR_OPTIONS)}, not {unknown}; the number of "
            "steps is `looks_for_steps`."
        )
    return dict(options)


def looks_for_figure(result: OptimizationResult | None, layer: str, channel: int) -> Figure:
    """`save_png(view="looks_for")`: the picture `channel` of `layer` looks for."""
    if result is None or result.layer_name != layer or result.channels[0] != channel:
        raise ValueError(
            f"no 'looks for' picture of {layer!r} channel {channel} yet; call "
            "`run_looks_for()` (or press the view's Looks for button) first."
        )
    fig = Figure(figsize=(4.2, 4.6))
    ax = fig.add_subplot()
    ax.imshow(result.images[0])
    ax.set_axis_off()
    done = "" if result.complete else f", partial {result.steps_done}/{result.steps}"
    ax.set_title(f"{layer}, channel {channel} looks for\n({result.steps} steps{done})", fontsize=10)
    return fig


class LooksForAPI:
    """`FeatureExplorer`'s "looks for" methods (a mixin; the work is `LooksForJobs`')."""

    _jobs: ExplorerJobs
    channel: int  # ExplorerTraits'
    error: str

    def run_looks_for(self, channel: int | None = None) -> None:
        """What does the channel look for? Optimise a picture that excites `channel` (default:
        the selected one; given, it is selected) of the layer shown, in the background, with
        `FeatureVisualizer.optimize`: it refines live in the view and `cancel()` stops it.
        On CUDA the full recipe (512 steps), elsewhere a 128-step preview at
        `model_size=128`; `looks_for_steps` and `looks_for_options` change that. A picture
        made before for the same layer, channel and settings is shown at once, without work.
        Selecting another channel while it runs runs that channel's instead."""
        if channel is not None and channel != self.channel:
            self.channel = channel  # checked
        self._jobs.submit_looks_for()

    @property
    def looks_for_result(self) -> OptimizationResult | None:
        """The "looks for" result shown (`.images[0]`, possibly partial: `.complete`), or
        None."""
        return self._jobs.looks_shown

    def _looks_for_now(self, content: dict) -> None:
        """`Message.LOOKS_FOR` {channel?}: run "looks for" (for `channel`, which the view
        selected with it); a problem goes to `error`."""
        channel = content.get("channel")
        try:
            self.run_looks_for(channel if isinstance(channel, int) else None)
        except (ValueError, t.TraitError) as exc:
            self.error = str(exc)


class LooksForJobs:
    """`ExplorerJobs`' "looks for" job (a mixin: it starts and reports with their methods)."""

    w: FeatureExplorer
    request: ViewRequest | None  # ViewJobs': the pending view job's
    looks_cache: OrderedDict[tuple, OptimizationResult]
    looks_wanted: tuple | None = None  # the key of the latest run asked for
    looks_shown: OptimizationResult | None = None  # what `_looks_for` shows
    looks_resume = False  # a run stopped by a view job: run again for the channel it shows

    if TYPE_CHECKING:  # ExplorerJobs'

        def start(self, job: Job, status: str, progress: float = -1.0) -> None: ...
        def report(self, job: Job, exc: BaseException) -> None: ...

    def looks_key(self) -> tuple:
        """The cache key of the shown layer's selected channel under the current settings."""
        w = self.w
        device = w._viz.device
        settings = looks_for_settings(device.type, w.looks_for_steps, dict(w.looks_for_options))
        version = w._viz.features._model_version()
        return (w._features_layer, w.channel, repr(sorted(settings.items())), str(device), version)

    def submit_looks_for(self) -> None:
        """Show the selected channel's cached picture, or optimise one in the background."""
        w = self.w
        with w._lock:
            with w._quiet():
                w.error = ""
            if self.request is None and w._features is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            key = self.looks_key() if self.request is None else None
            if key is not None and key in self.looks_cache:
                self.looks_cache.move_to_end(key)
                with w._quiet(), w.hold_sync():
                    self.publish_looks_for(self.looks_cache[key])
                return
            self.looks_wanted = key
            w._worker.submit(JobState.LOOKS_FOR, self._run_looks_for, self.report)

    def pause_looks_for(self) -> None:
        """Stop a queued or running run (a view job needs the worker); it runs again, for the
        channel then selected, once the view is shown (`show_looks_for`)."""
        w = self.w
        if w._worker.pending(JobState.LOOKS_FOR):
            self.looks_resume = True
        w._worker.invalidate(JobState.LOOKS_FOR)

    def cancel_looks_for(self) -> None:
        """Stop a queued or running run; its partial picture stays, marked cancelled."""
        w = self.w
        self.looks_resume = False
        running = w._worker.pending(JobState.LOOKS_FOR)
        w._worker.invalidate(JobState.LOOKS_FOR)
        meta = w._looks_for_meta
        if running and meta and not meta.get("complete"):
            with w._quiet():
                w._looks_for_meta = {**meta, "cancelled": True}

    def show_looks_for(self) -> None:
        """After a channel, layer or settings change (under the lock, quietly): the selected
        channel's cached picture, else its running run's latest, else none. A run for another
        channel that is queued or running (or paused by a view job) is replaced by one for
        this channel."""
        w = self.w
        if w._features is None:
            return
        key = self.looks_key()
        follow = self.looks_resume or (
            w._worker.pending(JobState.LOOKS_FOR) and self.looks_wanted != key
        )
        self.looks_resume = False
        cached = self.looks_cache.get(key)
        if cached is not None:
            self.looks_cache.move_to_end(key)
            if follow:
                w._worker.invalidate(JobState.LOOKS_FOR)
            self.publish_looks_for(cached)
        elif follow:
            self.clear_looks_for()
            self.looks_wanted = key
            w._worker.submit(JobState.LOOKS_FOR, self._run_looks_for, self.report)
        elif not (w._worker.pending(JobState.LOOKS_FOR) and self.looks_wanted == key):
            self.clear_looks_for()  # (a running run for this channel sends its own)

    def publish_looks_for(self, result: OptimizationResult, cancelled: bool = False) -> None:
        """Set the `_looks_for` payload (inside `hold_sync()`, quietly)."""
        w = self.w
        self.looks_shown = result
        w._outbox.set("_looks_for", *looks_for_view(result, w._viz.device.type, cancelled))

    def clear_looks_for(self) -> None:
        w = self.w
        self.looks_shown = None
        if w._looks_for_meta:
            w._outbox.set("_looks_for", b"", {})

    def _run_looks_for(self, job: Job) -> None:
        w = self.w
        with w._lock:
            if w._features is None:
                raise ValueError("the layer's features are not ready; select a layer first.")
            viz, layer, channel = w._viz, w._features_layer, w.channel
            key = self.looks_key()
            settings = looks_for_settings(
                viz.device.type, w.looks_for_steps, dict(w.looks_for_options)
            )
            self.looks_wanted = key
            cached = self.looks_cache.get(key)
            if cached is not None:  # asked for twice: the first run made it
                with w._quiet(), w.hold_sync():
                    self.publish_looks_for(cached)
                return
        steps = settings["steps"]
        self.start(job, f"looks for: {layer} ch {channel}, step 0/{steps}…", 0.0)
        throttle = Throttle(_PUBLISH_INTERVAL_S)

        def on_progress(step: int, total: int, partial: OptimizationResult) -> None:
            if not throttle.due(step, total):
                return
            with w._lock:
                if job.current:
                    with w._quiet(), w.hold_sync():
                        w.progress = step / total
                        w.status = f"looks for: {layer} ch {channel}, step {step}/{total}…"
                        if self.looks_key() == key:
                            self.publish_looks_for(partial)

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
            self.looks_cache[key] = result
            while len(self.looks_cache) > _CACHE_SIZE:
                self.looks_cache.popitem(last=False)
            if job.current and self.looks_key() == key:
                with w._quiet(), w.hold_sync():
                    self.publish_looks_for(result)
