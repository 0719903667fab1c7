'use strict';
// From test-cluster-net-listen-relative-path.js (issue 14, cause 5): a
// worker in a directory whose absolute path with the socket name exceeds a
// unix address's 107 bytes listens on a relative name; the primary binds it
// by the shorter path relative to its own working directory (here the
// case's directory), the file appears in the worker's directory, and the
// worker disconnects and exits 0.
const h = require('../common.js');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

h.passAtExit(0);
const socketDir = 'unix-socket-dir';
const socketName = 'A'.repeat(100 - socketDir.length - 1);
fs.mkdirSync(h.file(socketDir), { recursive: true });
process.chdir(h.file(socketDir));
h.assert.ok(path.resolve(socketName).length > 107, 'the absolute socket path should exceed 107 bytes');
h.stage('listen');
net.createServer(h.mustNotCall('the connection handler')).listen(socketName, h.mustCall(() => {
  h.assert.ok(fs.existsSync(socketName), 'socket not created in the working directory');
  h.stage('disconnect');
  process.disconnect();
}));
