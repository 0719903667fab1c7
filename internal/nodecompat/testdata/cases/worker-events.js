'use strict';
// From test-cluster-worker-events.js: a message from the primary is emitted
// both on process and on cluster.worker, equal; an 'error' emitted on
// process reaches cluster.worker; the worker exits with its own code, 2.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(2);
h.stage('wait for the message');
const messages = [];
function check(m) {
  messages.push(m);
  if (messages.length < 2) return;
  h.assert.deepStrictEqual(messages[0], messages[1]);
  h.assert.deepStrictEqual(messages[0], 'SOME MESSAGE');
  cluster.worker.once('error', h.mustCall((e) => {
    h.assert.strictEqual(e, 'HI');
    process.exit(2);
  }));
  process.emit('error', 'HI');
}
let onProcess = 0;
let onWorker = 0;
process.on('message', (m) => {
  h.assert.strictEqual(++onProcess, 1);
  check(m);
});
cluster.worker.on('message', (m) => {
  h.assert.strictEqual(++onWorker, 1);
  check(m);
});
