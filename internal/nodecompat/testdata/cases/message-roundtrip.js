'use strict';
// From test-cluster-message.js and test-cluster-fork-env.js: messages go
// both ways and arrive intact: each value the worker sends is echoed back by
// the primary (the harness's step), the worker compares it, and
// cluster.worker.send returns true and calls back without an error.
const h = require('../common.js');
const cluster = require('node:cluster');

const values = [
  'message from worker',
  42,
  { nested: [1, { b: null, c: false }], s: 'x' },
  'héllo ✓ 🐎 \u2028 "quoted" \\ back',
  [],
  true,
];
let next = 0;
function ask() {
  h.stage(`round trip ${next}`);
  const result = cluster.worker.send({ echo: values[next] }, h.mustCall((err) => h.assert.ifError(err), 1, `send callback ${next}`));
  h.assert.strictEqual(result, true);
}
process.on('message', (m) => {
  h.assert.deepStrictEqual(m, { echo: values[next] });
  if (++next === values.length) h.pass(`${values.length} round trips`);
  else ask();
});
ask();
