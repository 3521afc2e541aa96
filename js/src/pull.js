// @ts-check
// A view pulls: it asks Python for the current state (`messages.pull`) when it renders, and for
// a payload it could not paint. The answer comes as state updates and chunks, then
// `pushes.pulled`. A view whose first pull has no answer within `contract.pull_timeout_ms` has
// no kernel behind it (a saved page, an HTML export): it keeps what it shows, as a snapshot.

/** @import { Payload, PayloadName, ViewState } from "./types.js" */

/**
 * Ask Python for payloads `names`, or for the whole state when none are given; only the
 * latter waits for the answer, to tell a live view from a snapshot.
 * @param {ViewState} state @param {PayloadName[]} [names]
 */
export function pull(state, names) {
  const { model, messages, contract } = state;
  if (names) {
    model.send({ type: messages.pull, names });
    return;
  }
  for (const name of contract.payloads) { // answered below: not pulled one by one as well
    const value = /** @type {Payload} */ (state.get(name) || {});
    state.asked[name] = value.chunked ? value.chunked.id : value;
  }
  clearTimeout(state.pulling);
  state.pulling = window.setTimeout(() => {
    if (state.closed) return;
    state.snapshot = true;
    state.onSnapshot();
  }, contract.pull_timeout_ms);
  model.send({ type: messages.pull });
}

/** Python answered a pull: a kernel runs behind this view.
 * @param {ViewState} state */
export function pulled(state) {
  clearTimeout(state.pulling);
  state.pulling = 0;
  if (!state.snapshot) return;
  state.snapshot = false;
  state.onSnapshot();
}

/**
 * Pull payload `name` unless it was pulled already for the same `token` (its trait's value, or
 * its chunks' id): a payload that cannot be completed is asked for once, never in a loop.
 * @param {ViewState} state @param {PayloadName} name @param {unknown} token
 */
export function pullOnce(state, name, token) {
  if (state.asked[name] === token) return;
  state.asked[name] = token;
  pull(state, [name]);
}
