// @ts-check
// The registry of panels: one module each in this folder (its painter, given its own payload,
// with the payload's type beside it), beside one Python module in
// featviz_widgets/widget/panels/. The view builds, listens to and paints every panel through
// this list and names none; adding a panel is its two modules and a line in each registry.
// The grid and the unit (input and channel views) come first: they paint the core's canvases
// (their `slot`), before the other panels, in this order.

import { comparison } from "./comparison.js";
import { evidence } from "./evidence.js";
import { examples } from "./examples.js";
import { grid } from "./grid.js";
import { looks_for } from "./looks_for.js";
import { occlusion } from "./occlusion.js";
import { pca } from "./pca.js";
import { unit } from "./unit.js";

/** @import { PanelModule } from "../types.js" */

/** @type {PanelModule[]} */
export const PANELS = [grid, unit, occlusion, pca, looks_for, examples, comparison, evidence];
