'use strict';
// From test-cluster-listen-pipe-readable-writable.js (issue 14, cause 5): a
// unix socket listened on with readableAll and writableAll has mode 0777.
const h = require('../common.js');
const fs = require('node:fs');
const net = require('node:net');

h.passAtExit(0);
const p = h.file('rw.sock');
h.stage('listen');
const server = net.createServer().listen({ path: p, readableAll: true, writableAll: true }, h.mustCall(() => {
  const mode = fs.statSync(p).mode & 0o777;
  h.assert.strictEqual(mode, 0o777, `mode ${mode.toString(8)}`);
  h.stage('close and disconnect');
  server.close();
  process.disconnect();
}));
