'use strict';
// From test-cluster-process-disconnect.js: a worker whose server listens
// calls process.disconnect() and exits 0, not by a signal.
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
h.stage('listen');
net.createServer().listen(0, h.mustCall(() => {
  h.stage('disconnect');
  process.disconnect();
}));
