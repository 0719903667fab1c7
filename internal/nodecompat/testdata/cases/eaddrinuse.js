'use strict';
// From test-cluster-eaddrinuse.js and test-cluster-shared-handle-bind-error.js:
// a cluster server on a port that is taken (here by the worker's own
// exclusive server) fails with EADDRINUSE, and once the port is released a
// new cluster server listens on it fine.
const h = require('../common.js');
const net = require('node:net');

const hog = net.createServer();
h.stage('take the port');
hog.listen({ port: h.port, exclusive: true }, h.mustCall(() => {
  const s = net.createServer(h.mustNotCall('the connection handler'));
  h.stage('listen on the taken port');
  s.listen(h.port, h.mustNotCall('the listen callback'));
  s.on('error', h.mustCall((e) => {
    h.assert.strictEqual(e.code, 'EADDRINUSE');
    h.stage('release the port');
    hog.close(h.mustCall(() => {
      const again = net.createServer();
      h.stage('listen again');
      again.listen(h.port, h.mustCall(() => {
        again.close();
        h.pass('EADDRINUSE, then listening');
      }));
    }));
  }));
}));
