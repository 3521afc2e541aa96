"""The explorer's panels: each one Python module here (what it depends on, computes on the
worker, sends and draws) and one JS module in js/src/panels/ (its painter), listed in
`PANELS`. The explorer, its worker, the transport, `save_png` and the front end loop over the
registry and name no panel; adding one is its two modules and a line in each registry."""

from .base import Panel, PanelHost, PanelView
from .comparison import ComparisonPanel
from .evidence import EvidencePanel
from .examples import ExamplesPanel
from .looks_for import LooksForPanel
from .occlusion import OcclusionPanel
from .pca import PcaPanel

__all__ = ["PANELS", "Panel", "PanelHost", "PanelView"]

PANELS: tuple[type[Panel], ...] = (
    OcclusionPanel,
    PcaPanel,
    LooksForPanel,
    ExamplesPanel,
    ComparisonPanel,
    EvidencePanel,
)
