'use strict';
// From test-cluster-net-send.js and test-cluster-send-handle-twice.js (issue
// 14, cause 3): after the worker sent an accepted connection to the primary
// and the client ended it, server.close() calls back: closing a server whose
// sockets went to another process asks that process
// (NODE_SOCKET_NOTIFY_CLOSE) to say when they are closed.
const h = require('../common.js');
const net = require('node:net');

let client;
const server = net.createServer(h.mustCall((socket) => {
  h.stage('send the socket');
  process.send('socket', socket, h.mustCall((err) => {
    h.assert.ifError(err);
    client.end();
  }));
}));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(() => {
  client = net.connect(h.port, '127.0.0.1');
  client.on('error', h.fail);
  client.resume();
  client.on('close', h.mustCall(() => {
    h.stage('close the server');
    server.close(h.mustCall(() => h.pass('closed')));
  }));
}));
