'use strict';
// Issue 14, cause 4 (SharedHandle.remove for UDP): two workers bind udp4
// to one fixed port through the cluster and so share one socket; it keeps
// receiving while one of them still has it open, and the port is free
// again once both closed it: a socket that binds it itself (exclusive)
// then succeeds.
const h = require('../common.js');
const dgram = require('node:dgram');

const s = dgram.createSocket('udp4');
s.on('error', h.fail);
h.stage('bind');
s.bind(h.port, '127.0.0.1', h.mustCall(async () => {
  h.signal('bound');
  await h.signals('bound', 2);
  if (h.id === 2) {
    s.on('message', h.mustCall((msg) => {
      h.assert.strictEqual(String(msg), 'to the one left');
      h.stage('close');
      s.close(h.mustCall(() => {
        h.signal('closed');
        h.pass('received alone, then closed');
      }));
    }));
    h.signal('reading');
    return;
  }
  h.stage('close');
  s.close(h.mustCall(async () => {
    h.signal('closed');
    await h.signals('reading', 1);
    h.stage('send to worker 2, which alone has the socket');
    const out = dgram.createSocket('udp4');
    out.send('to the one left', h.port, '127.0.0.1', h.mustCall((err) => {
      h.assert.ifError(err);
      out.close();
    }));
    h.stage('wait for worker 2 to close');
    await h.signals('closed', 2);
    h.stage('bind the port without the cluster');
    let tries = 0;
    await h.until(() => new Promise((resolve) => {
      tries++;
      const own = dgram.createSocket('udp4');
      own.on('error', (e) => {
        if (e.code !== 'EADDRINUSE') h.fail(e);
        own.close();
        resolve(false);
      });
      own.bind({ port: h.port, address: '127.0.0.1', exclusive: true }, () => own.close(() => resolve(true)));
    }));
    h.pass(`port ${h.port} free again (attempt ${tries})`);
  }));
}));
