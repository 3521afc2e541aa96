"""The explorer's panels (`panels.PANELS`), made for one explorer: the registry's loop. After
each view every panel gets it (`update`), a change of a trait a panel owns or observes reaches
that panel (`changed`), Cancel reaches every cancellable panel, and `save_png` finds the panel
that draws a view. It names no panel."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from matplotlib.figure import Figure

from .panels.base import Panel, PanelHost, ViewState
from .protocol import CORE_SORT_MODES

__all__ = ["PanelRunner"]


class PanelRunner:
    """The panels of `registry`, each made with `host`."""

    def __init__(self, registry: Iterable[type[Panel]], host: PanelHost) -> None:
        self.host = host
        self.panels = {panel.name: panel(host) for panel in registry}
        self.views = {
            view: panel for panel in self.panels.values() for view in panel.export_views()
        }

    def initial(self) -> dict[str, object]:
        """The panels' own traits' first values."""
        return {
            name: value for panel in self.panels.values() for name, value in panel.initial().items()
        }

    def refresh(self) -> None:
        """After each view (under the lock): every panel gets it."""
        view = self.host.current()
        if view is None:
            return
        for panel in self.panels.values():
            panel.update(view)

    def reorder(self) -> None:
        """A panel's ranking came or went (under the lock): the panels that sort by it."""
        view = self.host.current()
        if view is None:
            return
        for panel in self.panels.values():
            if panel.sorts:
                panel.update(view)

    def ranked(self, view: ViewState) -> list[int]:
        """Every channel of `view` in the order the panels that sort show them (the first's),
        else by activation."""
        for panel in self.panels.values():
            if panel.sorts and (ranking := panel.ranked(view)) is not None:
                return ranking
        return list(view.rankings[CORE_SORT_MODES[0]])

    def stand_in(self) -> bytes:
        """The notebook's static picture, drawn by the panel that draws it."""
        for panel in self.panels.values():
            if (picture := panel.stand_in()) is not None:
                return picture
        raise ValueError("no panel draws a static picture")

    def changed(self, panel: str, name: str, value: object) -> None:
        """The person changed trait `name`, which `panel` owns or observes (under the lock)."""
        self.panels[panel].changed(name, value)

    def check_sort(self, mode: str) -> str:
        """`sort_by` = `mode`, checked by the panel that adds it."""
        for panel in self.panels.values():
            if mode in panel.sort_modes:
                return panel.check("sort_by", mode)
        return mode

    def ranking(self, mode: str, view: ViewState) -> list[int] | None:
        """The ranking of `view` under a sort mode a panel adds (None until it is known)."""
        for panel in self.panels.values():
            if mode in panel.sort_modes:
                return panel.ranking(mode, view)
        return None

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
