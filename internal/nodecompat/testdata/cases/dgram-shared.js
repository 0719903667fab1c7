'use strict';
// From test-cluster-dgram-1.js (issue 14, cause 4): four workers bind udp4
// port 0 through the cluster and so share one socket; 40 datagrams sent to
// it are read 10 by each worker, which closes its socket at the tenth.
// Worker 1 also sends them, from a socket of its own.
const h = require('../common.js');
const dgram = require('node:dgram');

const WORKERS = 4;
const PER_WORKER = 10;
const socket = dgram.createSocket('udp4');
socket.on('error', h.fail);
let received = 0;
socket.on('message', h.mustCall(() => {
  if (++received === PER_WORKER) {
    socket.close();
    h.pass(`${received} datagrams`);
  }
}, PER_WORKER, 'message'));
h.stage('bind');
socket.bind(0, h.mustCall(async () => {
  const port = socket.address().port;
  h.signal('port', port);
  h.stage(`wait for the others (${received} datagrams so far)`);
  const ports = await h.signals('port', WORKERS);
  h.assert.deepStrictEqual(ports, Array(WORKERS).fill(String(port)));
  if (h.id !== 1) return;
  h.stage('send');
  const out = dgram.createSocket('udp4');
  const buf = Buffer.from('hello world');
  let sent = 0;
  const next = () => {
    if (sent++ < WORKERS * PER_WORKER) out.send(buf, port, '127.0.0.1', next);
    else out.close();
  };
  next();
}));
