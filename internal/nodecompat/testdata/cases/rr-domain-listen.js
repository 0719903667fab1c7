'use strict';
// From test-cluster-rr-domain-listen.js: listening from a worker in which a
// domain was created works.
const h = require('../common.js');
const domain = require('node:domain');
const http = require('node:http');

const d = domain.create();
d.run(() => {});
h.stage('listen');
http.createServer(h.mustNotCall('the request handler')).listen(0, '127.0.0.1', h.mustCall(() => h.pass()));
