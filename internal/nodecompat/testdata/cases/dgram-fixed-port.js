'use strict';
// Issue 14, cause 4 (test-cluster-dgram-1.js on a fixed port): two workers
// bind udp4 to the same fixed port through the cluster, without reuseAddr;
// both succeed, since the primary shares one socket.
const h = require('../common.js');
const dgram = require('node:dgram');

const s = dgram.createSocket('udp4');
s.on('error', h.fail);
h.stage('bind');
s.bind(h.port, '127.0.0.1', h.mustCall(() => {
  h.assert.strictEqual(s.address().port, h.port);
  h.pass(`bound ${h.port}`);
}));
