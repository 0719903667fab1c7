'use strict';
// From test-cluster-kill-disconnect.js: worker 1 calls
// cluster.worker.disconnect(), worker 2 cluster.worker.kill(); both set
// exitedAfterDisconnect (the primary must answer the worker's
// exitedAfterDisconnect message for either to finish) and exit 0.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(0);
process.on('disconnect', h.mustCall());
h.stage(h.id === 1 ? 'disconnect' : 'kill');
if (h.id === 1) cluster.worker.disconnect();
else cluster.worker.kill();
h.assert.strictEqual(cluster.worker.exitedAfterDisconnect, true);
