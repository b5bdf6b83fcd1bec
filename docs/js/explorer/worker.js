/* docs/js/explorer/worker.js: the engine in a Web Worker (a module worker), so a dragged slider never blocks the page.
 *
 * Owns: the message protocol between the page (page.js's Runner) and the engine: {id, config} in, {id, result} or
 * {id, error} out. Waits for the kernels before the first computation.
 */
import { compute, ready } from "./engine.js";

self.onmessage = function (e) {
  var msg = e.data;
  ready.then(function () {
    var out;
    try { out = { id: msg.id, result: compute(msg.config) }; }
    catch (err) { out = { id: msg.id, error: String(err) }; }
    self.postMessage(out);
  });
};
