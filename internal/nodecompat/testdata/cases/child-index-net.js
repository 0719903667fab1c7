'use strict';
// From test-cluster-child-index-net.js: twice, a server listens on port 0
// and closes, and a second one listens on port 0 and closes; all four
// callbacks run and the worker exits 0.
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
let left = 4;
const done = () => { if (--left === 0) process.exit(0); };
h.stage('listen and close');
for (let i = 0; i < 2; i++) {
  const server = net.createServer();
  server.listen(0, h.mustCall(() => {
    server.close(done);
    const server2 = net.createServer();
    server2.listen(0, h.mustCall(() => server2.close(done), 1, `server2 ${i}`));
  }, 1, `server ${i}`));
}
