'use strict';
// From test-cluster-http-pipe.js: an HTTP server of a worker on a unix
// socket serves a request made through that socket; the request's socket
// has no remote or local address.
const h = require('../common.js');
const http = require('node:http');

const p = h.file('http.sock');
h.stage('listen');
http.createServer(h.mustCall((req, res) => {
  h.assert.strictEqual(req.connection.remoteAddress, undefined);
  h.assert.strictEqual(req.connection.localAddress, undefined);
  res.writeHead(200);
  res.end('OK');
})).listen(p, h.mustCall(() => {
  h.stage('request');
  http.get({ socketPath: p, path: '/' }, h.mustCall((res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { body += d; });
    res.on('end', h.mustCall(() => {
      h.assert.strictEqual(res.statusCode, 200);
      h.assert.strictEqual(body, 'OK');
      h.pass();
    }));
  }));
}));
