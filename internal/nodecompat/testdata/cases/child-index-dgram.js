'use strict';
// From test-cluster-child-index-dgram.js (issue 14, cause 4): as the net
// case, with udp4 sockets bound to port 0.
const h = require('../common.js');
const dgram = require('node:dgram');

h.passAtExit(0);
let left = 4;
const done = () => { if (--left === 0) process.exit(0); };
h.stage('bind and close');
for (let i = 0; i < 2; i++) {
  const socket = dgram.createSocket('udp4');
  socket.on('error', h.fail);
  socket.bind(0, h.mustCall(() => {
    process.nextTick(() => {
      socket.close(done);
      const socket2 = dgram.createSocket('udp4');
      socket2.on('error', h.fail);
      socket2.bind(0, h.mustCall(() => process.nextTick(() => socket2.close(done)), 1, `socket2 ${i}`));
    });
  }, 1, `socket ${i}`));
}
