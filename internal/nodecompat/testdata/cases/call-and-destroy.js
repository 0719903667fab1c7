'use strict';
// From test-cluster-call-and-destroy.js: a connected worker disconnects
// itself and, with nothing else to do, exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(0);
h.assert.strictEqual(cluster.worker.isConnected(), true);
h.stage('disconnect');
cluster.worker.disconnect();
process.on('disconnect', h.mustCall(() => h.assert.strictEqual(cluster.worker.isConnected(), false)));
