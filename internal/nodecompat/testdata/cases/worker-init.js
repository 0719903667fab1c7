'use strict';
// From test-cluster-worker-init.js: a message the primary sends as soon as
// the worker is online reaches cluster.worker's 'message' event; the worker
// answers true, the primary disconnects it, and it exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(0);
h.stage('wait for the message');
cluster.worker.on('message', h.mustCall((message) => {
  h.assert.strictEqual(message, 'foo');
  h.stage('wait for the disconnect');
  process.send(message === 'foo');
}));
process.on('disconnect', h.mustCall());
