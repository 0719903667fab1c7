'use strict';
// From test-cluster-worker-isconnected.js: isConnected() is true in a worker
// until the primary disconnects it, false in the 'disconnect' handler; the
// worker then exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(0);
h.assert.ok(cluster.worker.isConnected());
cluster.worker.process.on('disconnect', h.mustCall(() => {
  h.assert.ok(!cluster.worker.isConnected());
}));
h.stage('wait for the disconnect');
process.send('readyToDisconnect');
