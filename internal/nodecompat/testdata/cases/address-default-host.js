'use strict';
// A worker's listen(port) with no host listens on every interface as Node
// does it: '::' (dual-stack) when the machine has IPv6, which
// server.address() reports whether the primary hands out connections (rr,
// the primary's socket's name) or the socket itself (none).
const h = require('../common.js');
const net = require('node:net');

h.stage('listen');
const server = net.createServer().listen(h.port, h.mustCall(() => {
  h.assert.deepStrictEqual(server.address(), { address: '::', family: 'IPv6', port: h.port });
  h.pass();
}));
