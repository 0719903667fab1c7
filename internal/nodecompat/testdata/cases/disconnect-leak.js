'use strict';
// From test-cluster-disconnect-leak.js (scheduling none): the primary
// disconnects the worker right after it came online, while its listen(0) may
// still be in flight; the worker still sees 'disconnect' and exits 0.
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
process.on('disconnect', h.mustCall());
h.stage('listen, then wait for the disconnect');
net.createServer().listen(0);
