'use strict';
// From test-cluster-shared-leak.js (scheduling none): two workers share a
// port-0 server, worker 2 listening once worker 1 does; worker 2 connects
// to it, the primary then disconnects both; both exit 0 (ECONNRESET on the
// connection is fine).
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
const server = net.createServer((c) => {
  c.on('error', (e) => { if (e.code !== 'ECONNRESET') h.fail(e); });
  c.end('bye');
});
(async () => {
  if (h.id === 2) {
    h.stage('wait for worker 1 to listen');
    await h.signals('listening', 1);
  }
  h.stage('listen');
  server.listen(0, h.mustCall(onListening));
})();
function onListening() {
  if (h.id !== 2) {
    h.signal('listening');
    return h.stage('wait for the disconnect');
  }
  h.stage('connect');
  const conn = net.connect(server.address().port, h.mustCall(() => {
    h.stage('wait for the disconnect');
    process.send('connected');
  }));
  conn.on('error', (e) => { if (e.code !== 'ECONNRESET') h.fail(e); });
  conn.resume();
}
