'use strict';
// From test-cluster-dgram-ipv6only.js (issue 14, causes 4 and 5): a udp6
// socket bound with ipv6Only to [::] leaves the same port free on 0.0.0.0
// for a udp4 socket, both through the cluster; the worker then exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');
const dgram = require('node:dgram');

h.passAtExit(0);
const s6 = dgram.createSocket({ type: 'udp6', ipv6Only: true });
const s4 = dgram.createSocket({ type: 'udp4' });
s6.on('error', h.mustNotCall('the udp6 socket\'s error handler'));
s4.on('error', h.mustNotCall('the udp4 socket\'s error handler'));
h.stage('bind udp6');
s6.bind({ port: 0, address: '::' }, h.mustCall(() => {
  const { port } = s6.address();
  h.stage(`bind udp4 to ${port}`);
  s4.bind({ port, address: '0.0.0.0' }, h.mustCall(() => {
    let open = 2;
    const closed = () => {
      if (--open > 0) return;
      h.stage('disconnect');
      cluster.worker.disconnect();
    };
    process.nextTick(() => {
      s6.close(closed);
      s4.close(closed);
    });
  }));
}));
