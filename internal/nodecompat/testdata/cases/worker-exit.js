'use strict';
// From test-cluster-worker-exit.js: a listening worker that calls
// process.exit(42) exits with 42.
const h = require('../common.js');
const http = require('node:http');

h.passAtExit(42);
h.stage('listen');
http.createServer(() => {}).listen(0, '127.0.0.1', h.mustCall(() => process.exit(42)));
