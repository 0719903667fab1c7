'use strict';
// From test-cluster-concurrent-disconnect.js: two workers, told at the same
// time by the primary to disconnect (worker 1) or destroy themselves
// (worker 2), both exit 0.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(0);
h.stage('wait for the order');
process.on('message', h.mustCall((msg) => {
  h.assert.ok(msg === 'disconnect' || msg === 'destroy', `order ${msg}`);
  h.stage(msg);
  if (cluster.worker.isConnected()) cluster.worker[msg]();
}));
