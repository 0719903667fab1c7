'use strict';
// Issue 14, cause 3 (net.Server.getConnections with sockets sent to the
// parent, child_process's SocketListSend): after the worker sent an accepted
// connection to the primary, server.getConnections() asks the primary
// (NODE_SOCKET_GET_COUNT) and calls back with a count.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer(h.mustCall((socket) => {
  h.stage('send the socket');
  process.send('socket', socket, h.mustCall((err) => {
    h.assert.ifError(err);
    h.stage('getConnections');
    server.getConnections(h.mustCall((err, count) => {
      h.assert.ifError(err);
      h.assert.strictEqual(typeof count, 'number');
      h.pass(`${count} connections`);
    }));
  }));
}));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(() => {
  net.connect(h.port, '127.0.0.1').on('error', h.fail).resume();
}));
