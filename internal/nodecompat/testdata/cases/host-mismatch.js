'use strict';
// Node keys a shared handle by address and port: worker 1's server on
// PORT on every interface and worker 2's on 127.0.0.1:PORT are two handles,
// and the second cannot bind (the first is dual-stack on every interface):
// worker 2 gets EADDRINUSE, and worker 1 serves on.
const h = require('../common.js');
const net = require('node:net');

if (h.id === 1) {
  h.stage('listen on every interface');
  net.createServer((c) => c.end('w1')).listen(h.port, h.mustCall(() => {
    h.signal('listening');
    h.pass();
  }));
} else {
  (async () => {
    h.stage('wait for worker 1');
    await h.signals('listening', 1);
    const s = net.createServer(h.mustNotCall('worker 2\'s connection handler'));
    h.stage('listen on 127.0.0.1');
    s.listen(h.port, '127.0.0.1', h.mustNotCall('worker 2\'s listen callback'));
    s.on('error', h.mustCall(async (e) => {
      h.assert.strictEqual(e.code, 'EADDRINUSE');
      h.stage('connect');
      h.assert.strictEqual(await h.readAll({ port: h.port, host: '127.0.0.1' }), 'w1');
      h.pass('EADDRINUSE, and worker 1 serves');
    }));
  })().catch(h.fail);
}
