// @ts-check
// The front end's types, in one place: JSDoc `@typedef`s, no code. Other modules take them with
// a JSDoc `@import { Model, ViewState } from "./types.js"` tag, a comment that esbuild drops: this
// module adds nothing to the bundle.

/**
 * @typedef {{ name: string, type: string, shape: number[], layout: string }} LayerEntry
 * @typedef {{ id: number, size: number, count: number }} ChunkedMeta
 * @typedef {{ n: number, h: number, w: number, lo: number[], hi: number[] }} MapsMeta
 * @typedef {{ h: number, w: number, name: string, batch: number, index: number }} ImageMeta
 * @typedef {{ data?: Binary, chunked?: ChunkedMeta }} Payload
 *   What a payload trait holds besides its metadata: its bytes (`data`), or, when they are
 *   larger than one message should carry, `chunked`: they then come in pushes.chunk messages.
 * @typedef {"_image"} PayloadName The core's payload trait; each panel adds its own, `_<name>`
 *   (contract.payloads).
 * @typedef {Record<string, never>} Unset
 *   A Dict trait before Python first sets it: `{}`.
 * @typedef {{ mean?: number|null, std?: number|null, sparsity?: number|null, min?: number|null,
 *   max?: number|null, active_channels?: number|null, num_channels?: number|null,
 *   spatial_size?: number[], non_finite?: number }} Stats
 * @typedef {{ sort_modes: string[], color_scales: string[], shared_scale: string,
 *   export_views: string[], max_feature_maps: number, max_upload_bytes: number,
 *   chunk_bytes: number, pull_timeout_ms: number, payloads: PayloadName[],
 *   upload_data_key: string, messages: Messages, pushes: Pushes,
 *   cancellable_jobs: string[], panels: Record<string, object>, class_contribution: string }} Contract
 * @typedef {{ cancel: string, upload: string, pull: string } &
 *   Record<string, string>} Messages the core's message kinds, and the panels' (by name)
 * @typedef {{ chunk: string, pulled: string }} Pushes
 * @typedef {DataView | ArrayBuffer | ArrayBufferView | null | undefined} Binary
 *   Bytes from the host: DataView (traits, most buffers), Uint8Array (Colab), ArrayBuffer.
 * @typedef {{
 *   layer: string, sort_by: string, channel: number,
 *   num_features: number, image_index: number, color_scale: string, all_layers: boolean,
 *   device: string, position: number[], compare: string[], statistics: Stats,
 *   compare_statistics: Record<string, Stats>, busy: boolean, progress: number,
 *   status: string, error: string, _layers: LayerEntry[], _devices: string[],
 *   _order: number[], _contract: Contract, _job: string,
 *   _image: (ImageMeta & Payload) | Unset,
 *   model_name: string, _model_names: string[],
 * }} Model
 * @typedef {{ type: string, name: string, id: number, index: number, count: number,
 *   size: number }} ChunkMessage
 * @typedef {(content?: unknown, buffers?: readonly Binary[]) => void} Listener
 * @typedef {object} AnyModel The part of anywidget's model interface this view uses.
 * @property {<K extends keyof Model>(key: K) => Model[K]} get
 * @property {<K extends keyof Model>(key: K, value: Model[K]) => void} set
 * @property {() => void} save_changes
 * @property {(event: string, callback: Listener) => void} on
 * @property {(event: string, callback: Listener) => void} off
 * @property {(content: object, callbacks?: unknown, buffers?: ArrayBuffer[]) => void} send
 *
 * The enums, limits and message kinds come from `_contract` (featviz_widgets/widget/protocol.py);
 * the JS spells none of them. Messages to Python (model.send): {type: messages.upload, name,
 * id, index, count, size} + [a chunk of the file] | {type: messages.cancel} |
 * {type: messages.pull, names?}; and each panel's own (its module in js/src/panels/ says
 * which).
 * From Python (msg:custom):
 * {type: pushes.chunk, name, id, index, count, size} + [a chunk of payload `name`], for a
 * payload trait that says `chunked` | {type: pushes.pulled, names}: a pull was answered.
 */

/**
 * @typedef {(state: ViewState) => void} Painter
 * @typedef {{ fg: string, grid: string, font: string, panel: string }} Theme the colours
 *   canvases take
 * @typedef {{ ctx: CanvasRenderingContext2D, width: number, height: number, side: number,
 *   payload: object, data: Uint8Array, picture: ImageBitmap | null, get: AnyModel["get"],
 *   theme: Theme, canvas: HTMLCanvasElement }} PanelScene
 *   What a panel paints from: its canvas (CSS px), the side panel's width, its payload
 *   trait's value (its metadata), its bytes when all of them are here (else none), the input
 *   image, the traits, the theme.
 * @typedef {{ payload: object, side: number, width: number, fit: [number, number] }} PanelRoom
 *   The room a panel has: its payload, the side panel's width, its figure's width, and the
 *   side panel's picture size [w, h] (the default box).
 * @typedef {object} PanelModule A panel's painter (js/src/panels/), beside its Python module.
 * @property {string} name its payload trait is `_<name>`
 * @property {string} label the accessible name of its canvas (in a core slot: of the core canvas
 *   it exports)
 * @property {string[]} [views] its export views (default: its name)
 * @property {"side" | "below" | "main" | "detail"} [slot] where its figure goes: beside the
 *   input (default) or across the view under the statistics; or the core's canvases it paints
 *   with `painters` (no figure of its own): "main" the feature maps' (`dom.gridCanvas`),
 *   "detail" the side panel's pair (`dom.inputCanvas`, `dom.unitCanvas`)
 * @property {Painter[]} [painters] what paints the core's canvases of its slot (instead of
 *   `paint`): run in the registry's order before the other panels, on its payload's change and
 *   on the events it `listens` to
 * @property {string} [title] the heading of a panel below
 * @property {string[]} [listens] the model events besides its payload's change that repaint
 *   it, e.g. "change:channel" (naming its payload's as well changes nothing)
 * @property {(payload: object, get: AnyModel["get"]) => boolean} [shown] whether it shows
 *   (default: always)
 * @property {(room: PanelRoom) => [number, number]} [box] its canvas size (default: the side
 *   panel's picture size)
 * @property {(payload: object) => number} size how many bytes its metadata call for
 * @property {(scene: PanelScene) => { caption: string, title?: string, stamp: string }} [paint]
 *   draws the scene; returns its caption (and the caption's tooltip) and the state stamped on
 *   the canvas
 * @property {(state: ViewState) => Record<string, HTMLElement>} [controls] its controls, made
 *   once, in the toolbar
 * @property {(state: ViewState, entry: PanelEntry) => void} [sync] its controls from the
 *   traits, before each paint
 * @property {(state: ViewState, entry: PanelEntry) => () => void} [wire] its own controls'
 *   events; returns their cleanup
 * @property {boolean} [controlsRow] its controls are a toolbar row of their own
 * @property {boolean} [figure] false: no figure of its own (it draws over the core's views)
 * @property {(state: ViewState) => HTMLCanvasElement} [exportCanvas] the canvas its export
 *   views save (default: its own)
 * @property {(state: ViewState, ctx: CanvasRenderingContext2D, width: number, height: number)
 *   => string} [overInput] draws over the input image; returns its stamp
 * @property {(state: ViewState, channel: number) => string} [unitNote] what it says of the
 *   channel under the unit view
 * @property {(state: ViewState, channel: number) => void} [select] a channel being selected
 *   (a tile, the channel menu), before it is saved
 * @property {(state: ViewState, channel: number) => void} [tile] a channel's grid tile double
 *   clicked (the channel selected first)
 * @property {(state: ViewState, unit: number[], again: boolean) => void} [unit] a unit [h, w]
 *   chosen on the channel view (click, Enter); `again`: the one selected already, so
 *   `position` does not change
 * @typedef {{ panel: PanelModule, canvas: HTMLCanvasElement, caption: HTMLElement,
 *   figure: HTMLElement, payload: () => object, controls: Record<string, HTMLElement> }} PanelEntry
 * @typedef {{ id: number, count: number, size: number, parts: Uint8Array[] }} Incoming
 * @typedef {{ canvas: HTMLCanvasElement, cols: number, tile: number, n: number, key: string }} GridCache
 * @typedef {{ channel: number, meta: UnitMeta, data: Uint8Array }} Preview
 * @typedef {ReturnType<typeof import("./state.js").buildDom>} Dom
 * @typedef {object} ViewState Everything one view knows besides the model; UI-only, never synced.
 * @property {AnyModel} model
 * @property {Contract} contract the `_contract` trait: enums, limits, message kinds
 * @property {Messages} messages
 * @property {Pushes} pushes
 * @property {AnyModel["get"]} get
 * @property {(values: Partial<Model>) => void} save set traits and sync them to Python
 * @property {Dom} dom
 * @property {Record<string, Incoming>} incoming chunked payloads being assembled, by trait
 * @property {Record<string, { id: number, data: Uint8Array }>} received assembled payloads
 * @property {Record<string, unknown>} asked by payload trait, what it was last pulled for (its
 *   value, or its chunks' id): pulled once for each, never in a loop
 * @property {number} pulling the timer of the first pull, which a missing answer runs out
 * @property {boolean} snapshot no kernel answered the first pull: a saved page
 * @property {() => void} onSnapshot called when `snapshot` changes
 * @property {GridCache | null} gridCache the grid's mosaic at native resolution
 * @property {ImageBitmap | null} picture the decoded input image
 * @property {number} pictureToken the latest picture decode; older ones are dropped
 * @property {number[] | null} cursor keyboard cursor on the unit view: [h, w]
 * @property {{ grid: number, side: number }} layout CSS widths of the grid and side panels
 * @property {Preview | null} preview the channel painted from its grid tile until Python's
 *   payload for it arrives
 * @property {Set<Painter>} dirty what the next coalesced repaint runs
 * @property {boolean} scheduled whether a coalesced repaint is queued
 * @property {{ channels: number, num: number }} timers the channel list rebuild, `Maps` input
 * @property {string} theme the theme colours the canvases were last painted with
 * @property {boolean} closed the view was cleaned up: paint nothing more
 * @property {PanelEntry[]} panels the registry's panels in this view (panel-host.js)
 */

/** @import { UnitMeta } from "./panels/unit.js" */

export {};
