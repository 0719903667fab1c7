'use strict';
// Issue 14, cause 2 (RoundRobinHandle.remove, SharedHandle.remove): with two
// workers on a fixed port, the port keeps serving while one of them still
// listens, and is free again once both closed their servers: a server that
// binds it itself (exclusive) then succeeds.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer((c) => c.end(`w${h.id}`));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(async () => {
  h.signal('listening');
  await h.signals('listening', 2);
  if (h.id === 2) {
    h.stage('wait for worker 1 to close');
    await h.signals('closed', 1);
    h.stage('connect while worker 2 alone listens');
    h.assert.strictEqual(await h.readAll({ port: h.port, host: '127.0.0.1' }), 'w2');
    h.stage('close');
    server.close(h.mustCall(() => {
      h.signal('closed');
      h.pass('served alone, then closed');
    }));
    return;
  }
  h.stage('close');
  server.close(h.mustCall(async () => {
    h.signal('closed');
    h.stage('wait for worker 2 to close');
    await h.signals('closed', 2);
    h.stage('bind the port without the cluster');
    let tries = 0;
    await h.until(() => new Promise((resolve) => {
      tries++;
      const own = net.createServer();
      own.on('error', (e) => {
        if (e.code !== 'EADDRINUSE') h.fail(e);
        resolve(false);
      });
      own.listen({ port: h.port, host: '127.0.0.1', exclusive: true }, () => own.close(() => resolve(true)));
    }));
    h.pass(`port ${h.port} free again (attempt ${tries})`);
  }));
}));
