"""The explorer's panels: each one Python module here (what it depends on, computes, sends and
draws) and one JS module in js/src/panels/ (its painter), listed in `PANELS`. The explorer, its
worker, the transport, `save_png` and the front end loop over the registry and name no panel;
adding one is its two modules and a line in each registry. What the registry makes of the
contract with the front end (its payloads, sort modes, export views) is worked out here."""

from ..protocol import contract, export_views, payloads, sort_modes
from .base import Panel, PanelHost, ViewState
from .comparison import ComparisonPanel
from .evidence import EvidencePanel
from .examples import ExamplesPanel
from .grid import GridPanel
from .looks_for import LooksForPanel
from .occlusion import OcclusionPanel
from .pca import PcaPanel
from .unit import UnitPanel

__all__ = [
    "CONTRACT",
    "EXPORT_VIEWS",
    "PANELS",
    "PAYLOADS",
    "SORT_MODES",
    "Panel",
    "PanelHost",
    "ViewState",
]

PANELS: tuple[type[Panel], ...] = (
    GridPanel,
    UnitPanel,
    OcclusionPanel,
    PcaPanel,
    LooksForPanel,
    ExamplesPanel,
    ComparisonPanel,
    EvidencePanel,
)

PAYLOADS = payloads(PANELS)
"""Every payload trait and its metadata type (`protocol.payloads`)."""
SORT_MODES = sort_modes(PANELS)
"""The grid's sort modes (`sort_by`): the core's and the panels'."""
EXPORT_VIEWS = export_views(PANELS)
"""The views `save_png` and the front end's "Save PNG" export."""
CONTRACT = contract(PANELS)
"""What the front end reads (the `_contract` trait)."""
