'use strict';
// From test-cluster-basic.js and test-cluster-listening-port.js: a worker
// finds NODE_UNIQUE_ID gone from its environment, knows it is a worker with
// a positive integer id, and its server on 127.0.0.1 port 0 listens on a
// real port, with the address Node's own primary gives it.
const h = require('../common.js');
const cluster = require('node:cluster');
const http = require('node:http');

h.assert.strictEqual('NODE_UNIQUE_ID' in process.env, false);
h.assert.strictEqual(cluster.isWorker, true);
h.assert.strictEqual(cluster.isPrimary, false);
h.assert.ok(Number.isInteger(cluster.worker.id) && cluster.worker.id > 0, `worker id ${cluster.worker.id}`);
h.stage('listen');
const server = http.createServer(h.mustNotCall('the request handler'));
server.listen(0, '127.0.0.1', h.mustCall(() => {
  const a = server.address();
  h.assert.strictEqual(typeof a.port, 'number');
  h.assert.ok(a.port > 0, `port ${a.port}`);
  h.assert.deepStrictEqual(a, { address: '127.0.0.1', family: 'IPv4', port: a.port });
  setImmediate(() => {
    h.assert.strictEqual(cluster.worker.state, 'listening');
    h.pass(`listening on ${a.address}:${a.port}`);
  });
}));
