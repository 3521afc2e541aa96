"""The explorer's panels (`panels.PANELS`), made for one explorer: the registry's loop. After
each view every panel gets it (`update`), a change of a trait a panel owns or follows reaches
that panel (`changed`), Cancel reaches every cancellable panel, and `save_png` finds the panel
that draws a view. It names no panel."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from matplotlib.figure import Figure

from .panels import Panel, PanelHost

__all__ = ["PanelRunner"]


class PanelRunner:
    """The panels of `registry`, each made with `host`."""

    def __init__(self, registry: Iterable[type[Panel]], host: PanelHost) -> None:
        self.host = host
        self.panels = {panel.name: panel(host) for panel in registry}
        self.views = {
            view: panel for panel in self.panels.values() for view in panel.export_views()
        }

    def refresh(self) -> None:
        """After each view (under the lock): every panel gets it."""
        view = self.host.current()
        if view is None:
            return
        for panel in self.panels.values():
            panel.update(view)

    def changed(self, name: str, trait: str, value: Any) -> None:
        """The person changed `trait`, panel `name`'s own or one it follows (under the lock)."""
        self.panels[name].changed(trait, value)

    def pause(self) -> None:
        """A new view is being computed (under the lock): the panels stop what needs the worker."""
        for panel in self.panels.values():
            panel.pause()

    def stay_paused(self) -> None:
        """The view that paused them failed."""
        for panel in self.panels.values():
            panel.stay_paused()

    def cancel(self) -> None:
        """Stop every cancellable panel's job."""
        with self.host.lock:
            for panel in self.panels.values():
                if panel.cancellable:
                    panel.cancel()

    def handlers(self) -> dict[str, Callable[[dict], None]]:
        """The front end's messages the panels answer, by `type`."""
        return {
            kind: getattr(panel, method)
            for panel in self.panels.values()
            for kind, method in panel.messages.items()
        }

    def figure(self, view: str) -> Figure:
        """The static picture of `save_png` view `view`, drawn by its panel."""
        return self.views[view].picture(view)
