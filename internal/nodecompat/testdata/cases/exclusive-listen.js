'use strict';
// listen({exclusive: true}) bypasses the cluster: each of two workers binds
// port 0 itself and gets a port of its own, which it serves.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer((c) => c.end(`w${h.id}`));
h.stage('listen');
server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, h.mustCall(async () => {
  const port = server.address().port;
  h.signal('port', port);
  const ports = await h.signals('port', 2);
  h.assert.notStrictEqual(ports[0], ports[1]);
  h.stage('connect');
  h.assert.strictEqual(await h.readAll({ port, host: '127.0.0.1' }), `w${h.id}`);
  h.pass(`port ${port}`);
}));
