'use strict';
// From test-cluster-dgram-2.js (issue 14, cause 4): workers 2 to 4 bind udp4
// port 0 through the cluster and each send 10 datagrams from it; worker 1,
// on a socket of its own, receives all 30.
const h = require('../common.js');
const dgram = require('node:dgram');

const SENDERS = 3;
const PER_WORKER = 10;
if (h.id === 1) {
  const sink = dgram.createSocket('udp4');
  sink.on('error', h.fail);
  let received = 0;
  sink.on('message', () => {
    if (++received === SENDERS * PER_WORKER) {
      sink.close();
      h.pass(`${received} datagrams`);
    }
  });
  h.stage('bind the receiver');
  sink.bind({ port: 0, address: '127.0.0.1', exclusive: true }, () => {
    h.stage('receive');
    h.signal('sink', sink.address().port);
  });
} else {
  const socket = dgram.createSocket('udp4');
  socket.on('error', h.fail);
  h.stage('bind');
  socket.bind(0, h.mustCall(async () => {
    h.stage('wait for the receiver');
    const [port] = await h.signals('sink', 1);
    h.stage('send');
    const buf = Buffer.from('hello world');
    let left = PER_WORKER;
    for (let i = 0; i < PER_WORKER; i++) {
      socket.send(buf, Number(port), '127.0.0.1', h.mustCall((err) => {
        h.assert.ifError(err);
        if (--left === 0) h.pass(`sent ${PER_WORKER}`);
      }, 1, `send ${i}`));
    }
  }));
}
