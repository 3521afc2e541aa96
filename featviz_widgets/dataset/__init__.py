"""Dataset examples: scan a collection of images (`sources`) for the images that excite each
channel most (`scan`, with a running top-k in `topk` and resumable on-disk state in
`scan_state`), and the result (`result`). Depends on `core` and on `occlusion` (receptive
fields for the crops)."""

from .result import DatasetExamples
from .scan import ScanCancelled, scan_dataset

__all__ = ["DatasetExamples", "ScanCancelled", "scan_dataset"]
