'use strict';
// From test-cluster-net-listen-ipv6only-none.js and -rr.js (issue 14,
// cause 5): three workers listen on [::]:PORT with ipv6Only; the address is
// '::' IPv6 on that port; and 0.0.0.0:PORT is then still free: worker 1 binds
// it itself.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer();
h.stage('listen');
server.listen({ host: '::', port: h.port, ipv6Only: true }, h.mustCall(async () => {
  h.assert.deepStrictEqual(server.address(), { address: '::', family: 'IPv6', port: h.port });
  h.signal('listening');
  if (h.id !== 1) return h.pass();
  h.stage('wait for the others');
  await h.signals('listening', 3);
  h.stage('bind 0.0.0.0 without the cluster');
  const own = net.createServer();
  own.on('error', h.fail);
  own.listen({ host: '0.0.0.0', port: h.port, exclusive: true }, h.mustCall(() => {
    own.close();
    h.pass('0.0.0.0 was free');
  }));
}));
