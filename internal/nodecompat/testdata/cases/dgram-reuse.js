'use strict';
// From test-cluster-dgram-reuse.js (issue 14, cause 4): two reuseAddr udp4
// sockets of one worker bind the same port through the cluster; both close
// and the worker disconnects and exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');
const dgram = require('node:dgram');

h.passAtExit(0);
const a = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const b = dgram.createSocket({ type: 'udp4', reuseAddr: true });
a.on('error', h.fail);
b.on('error', h.fail);
h.stage('bind the first');
a.bind(0, h.mustCall(() => {
  const port = a.address().port;
  h.stage(`bind the second to ${port}`);
  b.bind(port, h.mustCall(() => {
    h.assert.strictEqual(b.address().port, port);
    let open = 2;
    const closed = () => {
      if (--open > 0) return;
      h.stage('disconnect');
      cluster.worker.disconnect();
    };
    process.nextTick(() => {
      a.close(closed);
      b.close(closed);
    });
  }));
}));
