'use strict';
// Two workers listen on the same unix socket path: both succeed (one
// handle, shared), and 10 connections to it are all served.
const h = require('../common.js');
const net = require('node:net');

const p = h.file('shared.sock');
h.stage('listen');
net.createServer((c) => c.end(`w${h.id}`)).listen(p, h.mustCall(async () => {
  h.signal('listening');
  await h.signals('listening', 2);
  if (h.id === 1) return h.pass('listening');
  const by = { w1: 0, w2: 0 };
  for (let i = 0; i < 10; i++) {
    h.stage(`connection ${i}: ${JSON.stringify(by)}`);
    by[await h.readAll({ path: p })]++;
  }
  h.assert.strictEqual(by.w1 + by.w2, 10);
  h.pass(JSON.stringify(by));
}));
