'use strict';
// From test-cluster-worker-destroy.js: Worker.prototype.destroy inside a
// worker, once after it disconnected (worker 1) and once while connected
// (worker 2); both see 'disconnect' and exit 0.
const h = require('../common.js');
const cluster = require('node:cluster');

h.passAtExit(0);
process.on('disconnect', h.mustCall());
if (h.id === 1) {
  h.stage('disconnect, then destroy');
  cluster.worker.process.on('disconnect', () => cluster.worker.destroy());
  cluster.worker.disconnect();
} else {
  h.stage('destroy');
  cluster.worker.destroy();
}
