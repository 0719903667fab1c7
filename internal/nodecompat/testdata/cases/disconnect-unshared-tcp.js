'use strict';
// From test-cluster-disconnect-unshared-tcp.js: worker 1 listens, worker 2
// never does; the primary disconnects worker 2 first, then every worker;
// both exit 0.
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
process.on('disconnect', h.mustCall());
if (h.id === 1) {
  h.stage('listen');
  net.createServer().listen(0, h.mustCall(() => {
    h.stage('wait for the disconnect');
    process.send('bound');
  }));
} else {
  h.stage('wait for the disconnect');
}
