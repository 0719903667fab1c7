'use strict';
// From test-cluster-worker-disconnect.js: when the primary disconnects a
// listening worker, cluster.worker emits 'disconnect' in the worker, whose
// handler exits with code 42.
const h = require('../common.js');
const cluster = require('node:cluster');
const http = require('node:http');

h.passAtExit(42);
h.stage('listen');
http.createServer(h.mustNotCall('the request handler')).listen(h.port, '127.0.0.1', h.mustCall(() => {
  h.stage('wait for the disconnect');
  process.send('listening');
}));
cluster.worker.on('disconnect', h.mustCall(() => process.exit(42)));
