'use strict';
// What a worker's server sees of a connection, as in any of Node's net
// tests: the peer's address and port, and its own local port.
const h = require('../common.js');
const net = require('node:net');

let client;
const server = net.createServer(h.mustCall((c) => {
  h.assert.strictEqual(c.remoteAddress, '127.0.0.1');
  h.assert.strictEqual(c.remoteFamily, 'IPv4');
  h.assert.strictEqual(c.remotePort, client.localPort);
  h.assert.strictEqual(c.localAddress, '127.0.0.1');
  h.assert.strictEqual(c.localPort, h.port);
  c.end();
  h.pass(`${c.remoteAddress}:${c.remotePort} -> ${c.localPort}`);
}));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(() => {
  h.stage('connect');
  client = net.connect(h.port, '127.0.0.1');
  client.on('error', h.fail);
  client.resume();
}));
