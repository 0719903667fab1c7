'use strict';
// From test-cluster-send-handle-twice.js (issue 14, cause 3): a worker sends
// a connection its server accepted to the primary, twice; once the client
// closed, cluster.worker.disconnect() must complete (closing the server asks
// the primary, NODE_SOCKET_NOTIFY_CLOSE, whether the sent sockets are
// closed) and the worker exits 0.
const h = require('../common.js');
const cluster = require('node:cluster');
const net = require('node:net');

h.passAtExit(0);
const server = net.createServer(h.mustCall((socket) => {
  h.stage('send the socket twice');
  process.send('send-handle-1', socket);
  process.send('send-handle-2', socket);
  h.signal('sent');
}));
h.stage('listen');
server.listen(h.port, h.mustCall(() => {
  const client = net.connect({ host: 'localhost', port: h.port });
  client.on('error', h.fail);
  client.on('close', h.mustCall(() => {
    h.stage('disconnect');
    cluster.worker.disconnect();
  }));
  h.signals('sent', 1).then(() => client.end());
}));
