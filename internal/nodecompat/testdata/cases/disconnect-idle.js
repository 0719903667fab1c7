'use strict';
// From test-cluster-disconnect-idle-worker.js: idle workers disconnected by
// the primary see 'disconnect' and exit 0.
const h = require('../common.js');

h.passAtExit(0);
h.stage('wait for the disconnect');
process.on('disconnect', h.mustCall());
