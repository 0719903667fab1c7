'use strict';
// From test-cluster-server-restart-none.js and -rr.js: worker 2 listens on
// port 0 while worker 1 does, closes its server, listens on port 0 again,
// closes it and disconnects; worker 1 then disconnects too; both exit 0.
const h = require('../common.js');
const net = require('node:net');

h.passAtExit(0);
const server = net.createServer();
h.stage('listen');
server.listen(0, h.mustCall(async () => {
  if (h.id === 1) {
    h.signal('listening');
    h.stage('wait for worker 2');
    await h.signals('restarted', 1);
    h.stage('disconnect');
    process.disconnect();
    return;
  }
  h.stage('close');
  server.close(h.mustCall(() => {
    h.stage('listen again');
    server.listen(0, h.mustCall(() => {
      h.stage('close again');
      server.close(h.mustCall(() => {
        h.signal('restarted');
        h.stage('disconnect');
        process.disconnect();
      }));
    }));
  }));
}, 1, 'first listen'));
