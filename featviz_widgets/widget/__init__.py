"""`FeatureExplorer`, the notebook widget: synced traits (`traits`), one background `worker`,
one object per job kind (the view), the panels and their
registry (`panels`, `panel_runner`), the view payloads
(`views`, `payload`, `transfer`), the contract with the front end (`protocol`) and the static
pictures (`static`). Depends on the `visualizer` facade and the analyses, never the reverse."""

from .explorer import FeatureExplorer

__all__ = ["FeatureExplorer"]
