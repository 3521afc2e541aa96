"""What does the channel look for? The picture `FeatureVisualizer.optimize` makes for the
selected channel, optimised on the explorer's worker and shown as it refines. Its painter,
button and steps menu are js/src/panels/looks_for.js.

- **Started** by the view's "Looks for" button, a double click on a grid tile, or
  `FeatureExplorer.run_looks_for()`; the front end's `looks_for` message.
- **Live.** A partial picture every `PROGRESS_EVERY` steps (at most every
  `PUBLISH_INTERVAL_S`; the first one always), with the step count in `progress` / `status`.
- **Device defaults.** On CUDA the full recipe (512 steps at the model's input size); elsewhere
  a 128-step preview with `model_size=128` (about 14 s for resnet50 `layer3` on a 2-core CPU).
  `looks_for_steps` and `looks_for_options` (any `optimize` recipe option) override them.
- **Cached** per (model, layer, channel, settings, device, weights' version): a channel asked
  for again is shown at once, without work. The picture does not depend on the input image.
- **Cancel / follow.** Cancel stops it (the partial picture stays, marked cancelled, and is not
  cached). Selecting another channel while it runs replaces it with that channel's run (or its
  cached picture); a layer or image change stops it, and it resumes for the channel shown next.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, TypedDict

import numpy as np
import traitlets as t
from matplotlib.figure import Figure

from ...core.json_values import json_safe
from ...optimize.optimizer import OptimizationResult
from ..worker import Job, Throttle
from .base import Panel, PanelHost, ViewState

__all__ = [
    "FULL_STEPS",
    "LOOKS_FOR_OPTIONS",
    "LooksForMeta",
    "LooksForPanel",
    "PREVIEW_STEPS",
    "STEP_CHOICES",
    "check_looks_for_options",
    "looks_for_settings",
    "looks_for_view",
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


STEP_CHOICES = (64, 128, 256, 512, 1024)
"""The steps the view's "looks for" menu offers (beside the device's default, None)."""
PUBLISH_INTERVAL_S = 0.2  # partial pictures sent to the view at most this often
CACHE_SIZE = 64


class LooksForMeta(TypedDict):
    """`_looks_for`'s metadata: the (partial) picture the selected channel looks for, optimised by
    `FeatureVisualizer.optimize`; its `data` is uint8 RGB bytes, h x w x 3, row-major."""

    h: int
    w: int
    layer: str
    channel: int
    step: int
    steps: int
    complete: bool
    cancelled: bool
    objective: float | None
    device: str
    note: str  # `OptimizationResult.note` of a complete run ("" or why more steps would help)


def looks_for_view(
    result: OptimizationResult, device: str, cancelled: bool = False
) -> tuple[bytes, dict]:
    """`_looks_for`: the (partial) optimised picture of the first channel of `result` as uint8
    RGB bytes (h x w x 3, row-major; larger ones travel in chunks like every payload), and
    `LooksForMeta`."""
    picture = np.ascontiguousarray(result.images[0], dtype=np.uint8)
    height, width = picture.shape[:2]
    objective = float(result.activations[0]) if len(result.activations) else None
    meta = LooksForMeta(
        h=int(height),
        w=int(width),
        layer=result.layer_name,
        channel=int(result.channels[0]),
        step=int(result.steps_done),
        steps=int(result.steps),
        complete=bool(result.complete),
        cancelled=bool(cancelled),
        objective=objective,
        device=device,
        note=result.note if result.complete else "",
    )
    return picture.tobytes(), json_safe(meta)


class LooksForPanel(Panel):
    name = "looks_for"
    meta = LooksForMeta
    status = "looks for"
    cancellable = True
    messages = {"looks_for": "on_ask"}  # {channel?}: run it for `channel` (then selected)
    contract = {"steps": list(STEP_CHOICES)}
    traits = {
        "looks_for_steps": t.Int(
            None,
            allow_none=True,
            help="""Steps of a "looks for" optimization (`run_looks_for`); None: 512 on CUDA,
            a 128-step preview elsewhere.

            - Default: `None`""",
        ).tag(sync=True),
        "looks_for_options": t.Dict(
            help="""`FeatureVisualizer.optimize` recipe options for "looks for" (`size`,
            `model_size`, `lr`, `seed`, ...), over the device's defaults (`model_size=128` on a
            CPU)."""
        ),
    }

    def __init__(self, host: PanelHost) -> None:
        super().__init__(host)
        self.cache: OrderedDict[tuple, OptimizationResult] = OrderedDict()
        self.shown: OptimizationResult | None = None  # what `_looks_for` shows
        self.resume = False  # a run stopped by a view job: run again for the channel it shows

    def check(self, name: str, value: Any) -> Any:
        if name == "looks_for_steps" and value is not None and value < 1:
            raise ValueError(f"`looks_for_steps` must be None or at least 1, got {value}.")
        if name == "looks_for_options":
            return check_looks_for_options(value)
        return value

    @staticmethod
    def settings(view: ViewState) -> dict:
        """The `optimize` keyword arguments of a run for `view`."""
        options = dict(view.traits.get("looks_for_options") or {})
        steps = view.traits.get("looks_for_steps")
        return looks_for_settings(view.viz.device.type, steps, options)

    def depends_on(self, view: ViewState) -> Hashable:
        """The picture asked for: the layer shown's selected channel under the settings, on
        the device and weights of the model shown."""
        settings = repr(sorted(self.settings(view).items()))
        device = str(view.viz.device)
        return (view.model_name, view.layer, view.channel, settings, device, view.weights_version)

    @staticmethod
    def asked(key: Hashable) -> Hashable:
        """`key` but for the weights' version: a picture made while the user trained is shown."""
        return key[:-1]  # type: ignore[index]

    # ------------------------------------------------------------------ runs
    def on_ask(self, content: dict) -> None:
        """The front end's `looks_for` message: run it for `channel` (selecting it)."""
        channel = content.get("channel")
        try:
            widget = self.host.widget
            if isinstance(channel, int) and channel != widget.channel:
                widget.channel = channel  # checked
            self.submit()
        except (ValueError, t.TraitError) as exc:
            self.host.error(str(exc))

    def submit(self) -> None:
        """Show the selected channel's cached picture, or optimise one in the background."""
        with self.host.lock:
            self.host.error("")
            if self.host.viewing():  # run for the channel of the view being computed
                self.resume = True
                return
            view = self.host.current()
            if view is None:
                raise ValueError("the layer's features are not ready yet; try again shortly.")
            key = self.depends_on(view)
            if key in self.cache:
                self.cache.move_to_end(key)
                self.publish(view, self.cache[key])
                return
            self.start(view)

    def start(self, view: ViewState) -> None:
        """Queue a run for `view` (under the lock)."""
        self.wanted = self.depends_on(view)
        self.host.worker.submit(self.name, lambda job: self._run(job, view), self.report)

    def pause(self) -> None:
        """A view job needs the worker: stop a queued or running run; it runs again, for the
        channel then selected, once the view is shown (`update`)."""
        if self.host.worker.pending(self.name):
            self.resume = True
        self.host.worker.invalidate(self.name)

    def stay_paused(self) -> None:
        """The view that paused it failed: do not run again."""
        self.resume = False

    def cancel(self) -> bool:
        """Stop a queued or running run; its partial picture stays, marked cancelled."""
        with self.host.lock:
            self.resume = False
            running = super().cancel()
            if running:
                self.mark_cancelled()
            return running

    def update(self, view: ViewState) -> None:
        """After a channel, layer or settings change (under the lock): the selected channel's
        cached picture, else its running run's latest, else none. A run for another channel
        that is queued or running (or paused by a view job) is replaced by one for this
        channel."""
        key = self.depends_on(view)
        running = self.host.worker.pending(self.name)
        follow = self.resume or (running and self.wanted != key)
        self.resume = False
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.move_to_end(key)
            if follow:
                self.host.worker.invalidate(self.name)
            self.publish(view, cached)
        elif follow:
            self.clear()
            self.start(view)
        elif not (running and self.wanted == key):
            self.clear()  # (a running run for this channel sends its own)

    def publish(self, view: ViewState, result: OptimizationResult, cancelled: bool = False) -> None:
        """Set the `_looks_for` payload (under the lock)."""
        self.shown = result
        self.host.publish(self.trait, *looks_for_view(result, view.viz.device.type, cancelled))

    def clear(self) -> None:
        self.shown = None
        if self.host.payload(self.trait)[1]:
            self.host.publish(self.trait, b"", {})

    def _run(self, job: Job, view: ViewState) -> None:
        key, settings = self.depends_on(view), self.settings(view)
        layer, channel = view.layer, view.channel
        with self.host.lock:
            cached = self.cache.get(key)
            if cached is not None:  # asked for twice: the first run made it
                self.publish(view, cached)
                return
        steps = settings["steps"]
        self.host.status.start(job, f"looks for: {layer} ch {channel}, step 0/{steps}…", 0.0)
        throttle = Throttle(PUBLISH_INTERVAL_S)

        def on_progress(step: int, total: int, partial: OptimizationResult) -> None:
            if not throttle.due(step, total):
                return
            text = f"looks for: {layer} ch {channel}, step {step}/{total}…"
            self.host.status.start(job, text, step / total)
            with self.host.lock:
                if job.current and self._still_asked(key):
                    self.publish(view, partial)

        result = view.viz.optimize(
            layer,
            channel,
            on_progress=on_progress,
            should_stop=job.stale,
            progress=False,  # the widget shows its own
            progress_every=PROGRESS_EVERY,
            **settings,
        )
        with self.host.lock:
            self.cache[key] = result
            while len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)
            # Shown if the view still asks for it, though the user may have trained meanwhile
            # (the weights' version moved): a later ask runs it again.
            if job.current and self._still_asked(key):
                self.publish(view, result)

    def _still_asked(self, key: Hashable) -> bool:
        now = self.host.current()
        return now is not None and self.asked(self.depends_on(now)) == self.asked(key)

    # ------------------------------------------------------------------ picture
    def picture(self, name: str) -> Figure:
        """`save_png(view="looks_for")`: the picture the selected channel looks for."""
        with self.host.lock:
            result, view = self.shown, self.host.current()
        layer, channel = (view.layer, view.channel) if view else ("", -1)
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
        title = f"{layer}, channel {channel} looks for\n({result.steps} steps{done})"
        ax.set_title(title, fontsize=10)
        return fig
