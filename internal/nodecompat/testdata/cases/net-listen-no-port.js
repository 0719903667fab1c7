'use strict';
// From test-cluster-net-listen.js: listen() with no port at all works in a
// worker (it once tripped an assertion), and the worker then exits 0.
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
h.stage('listen');
net.createServer(h.mustNotCall('the connection handler')).listen(h.mustCall(() => process.exit(0)));
