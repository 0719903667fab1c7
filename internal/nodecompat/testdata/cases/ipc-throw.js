'use strict';
// From test-cluster-ipc-throw.js: an HTTP server on a taken port emits
// 'error'; the worker disconnects and throws from the handler, and its own
// uncaughtException handler gets the error; the worker exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');
const http = require('node:http');
const net = require('node:net');

h.allowUncaught();
h.passAtExit(0);
process.on('uncaughtException', h.mustCall((e) => h.assert.strictEqual(e.code, 'EADDRINUSE')));
const hog = net.createServer();
h.stage('take the port');
hog.listen({ port: h.port, exclusive: true }, h.mustCall(() => {
  const server = http.createServer();
  h.stage('listen on the taken port');
  server.listen(h.port);
  server.on('error', h.mustCall((e) => {
    hog.close();
    h.stage('disconnect');
    cluster.worker.disconnect();
    throw e;
  }));
}));
