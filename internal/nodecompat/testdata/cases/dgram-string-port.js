'use strict';
// Issue 14, cause 4: dgram's bind() takes the port as a string too
// (socket.bind(process.env.PORT)) and passes it to the primary as it is;
// Node's primary binds the number. Two workers share the socket.
const h = require('../common.js');
const dgram = require('node:dgram');

const s = dgram.createSocket('udp4');
s.on('error', h.fail);
h.stage('bind');
s.bind(String(h.port), '127.0.0.1', h.mustCall(() => {
  h.assert.strictEqual(s.address().port, h.port);
  h.pass(`bound ${h.port}`);
}));
