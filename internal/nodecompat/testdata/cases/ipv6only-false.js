'use strict';
// From test-cluster-net-listen-ipv6only-false.js: three workers listening
// on [::] port 0 without ipv6Only share one dual-stack port, which accepts
// an IPv4 connection.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer((c) => c.end('hi'));
h.stage('listen');
server.listen({ host: '::', port: 0 }, h.mustCall(async () => {
  const port = server.address().port;
  h.signal('port', port);
  h.stage('wait for the others');
  const ports = await h.signals('port', 3);
  h.assert.deepStrictEqual(ports, [String(port), String(port), String(port)]);
  if (h.id !== 1) return h.pass();
  h.stage('connect over IPv4');
  h.assert.strictEqual(await h.readAll({ port, host: '127.0.0.1' }), 'hi');
  h.pass(`dual-stack port ${port}`);
}));
