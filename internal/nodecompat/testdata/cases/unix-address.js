'use strict';
// Issue 14, cause 6: server.address() of a server listening on a unix
// socket path is that path, a string, whether the primary hands out
// connections (rr) or the socket (none).
const h = require('../common.js');
const net = require('node:net');

const p = h.file('addr.sock');
h.stage('listen');
const server = net.createServer().listen(p, h.mustCall(() => {
  h.assert.strictEqual(server.address(), p);
  h.pass();
}));
