'use strict';
// From test-cluster-rr-ref.js: unref() then ref() of a listening server, and
// close() still calls back.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer(h.mustNotCall('the connection handler'));
h.stage('listen');
server.listen(0, h.mustCall(() => {
  server.unref();
  server.ref();
  h.stage('close');
  server.close(h.mustCall(() => {
    process.send('done');
    h.pass();
  }));
}));
