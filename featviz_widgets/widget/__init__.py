"""`FeatureExplorer`, the notebook widget (`explorer`, the composition root, which the package
exports): the view state and its job (`view_job`), the panels and their registry (`panels`,
`panel_runner`), several models (`model_set`, `model_switch`), one background `worker` and the
job status, the synced traits and their checks (`traits`), the payloads and their transport
(`payload`, `transfer`), the contract with the front end (`protocol`), the notebook's static
picture (`static`) and the offline page (`saved_page`). Depends on the `visualizer` facade and
the analyses, never the reverse."""
