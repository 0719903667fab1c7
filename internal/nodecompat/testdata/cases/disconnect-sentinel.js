'use strict';
// From test-cluster-worker-forced-exit.js (its cluster half): a worker the
// primary disconnects is not forced out; its own 'disconnect' handler
// decides, here exiting 42 shortly after.
const h = require('../common.js');

h.passAtExit(42);
h.stage('wait for the disconnect');
process.on('disconnect', h.mustCall(() => setTimeout(() => process.exit(42), 10)));
