'use strict';
// From test-cluster-worker-wait-server-close.js: when the primary
// disconnects a worker whose server has an open connection, the worker's
// 'disconnect' comes only after its server closed, which waits for that
// connection to end.
const h = require('../common.js');
const net = require('node:net');

let serverClosed = false;
const server = net.createServer((socket) => {
  socket.write('.');
  socket.on('data', () => {});
});
server.once('close', () => { serverClosed = true; });
h.passAtExit(0);
const keepOpen = setInterval(() => {}, 9999);
process.once('disconnect', h.mustCall(() => {
  h.assert.ok(serverClosed, 'disconnect before the server closed');
  clearInterval(keepOpen);
}));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(() => {
  h.stage('connect');
  const client = net.connect(h.port, '127.0.0.1');
  client.on('error', h.fail);
  client.once('data', h.mustCall(async () => {
    h.stage('wait for the disconnect to close the server');
    process.send('connected');
    await h.until(() => !server.listening);
    h.stage('end the connection');
    client.end();
  }));
}));
