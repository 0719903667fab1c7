'use strict';
// Issue 14, cause 1 (as test-cluster-bind-twice.js, within one worker): a
// second server of the same worker listening on the same fixed port gets
// EADDRINUSE, and the first one goes on serving.
const h = require('../common.js');
const net = require('node:net');

const first = net.createServer((c) => c.end('first'));
h.stage('listen first');
first.listen(h.port, '127.0.0.1', h.mustCall(() => {
  const second = net.createServer(h.mustNotCall('the second server\'s connection handler'));
  h.stage('listen second');
  second.listen(h.port, '127.0.0.1', h.mustNotCall('the second listen callback'));
  second.on('error', h.mustCall(async (e) => {
    h.assert.strictEqual(e.code, 'EADDRINUSE');
    h.stage('connect');
    h.assert.strictEqual(await h.readAll({ port: h.port, host: '127.0.0.1' }), 'first');
    h.pass('EADDRINUSE, and the first server serves');
  }));
}));
