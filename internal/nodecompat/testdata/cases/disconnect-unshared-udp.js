'use strict';
// From test-cluster-disconnect-unshared-udp.js: as the TCP case, with a
// dgram socket bound through the cluster in worker 1.
const h = require('../common.js');
const dgram = require('node:dgram');

h.passAtExit(0);
process.on('disconnect', h.mustCall());
if (h.id === 1) {
  h.stage('bind');
  const s = dgram.createSocket('udp4');
  s.on('error', h.fail);
  s.bind(0, h.mustCall(() => {
    h.stage('wait for the disconnect');
    process.send('bound');
  }));
} else {
  h.stage('wait for the disconnect');
}
