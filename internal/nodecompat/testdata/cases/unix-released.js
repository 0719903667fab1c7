'use strict';
// Issue 14, cause 2: a unix socket file a worker's listen(path) created is
// removed once the worker's server closed (it was the only one).
const h = require('../common.js');
const fs = require('node:fs');
const net = require('node:net');

const p = h.file('s.sock');
const server = net.createServer();
h.stage('listen');
server.listen(p, h.mustCall(() => {
  h.assert.ok(fs.existsSync(p), 'no socket file after listen');
  h.stage('close');
  server.close(h.mustCall(async () => {
    h.stage('wait for the socket file to go');
    await h.until(() => !fs.existsSync(p));
    h.pass('socket file removed');
  }));
}));
