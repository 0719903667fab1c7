'use strict';
// Both workers of a shared port serve (rr: in turn; none: whoever accepts):
// of 20 connections opened one after the other by worker 2, each answered
// by the worker that took it, rr gives each worker some (Node's primary
// alternates), none at least serves them all.
const h = require('../common.js');
const net = require('node:net');

const server = net.createServer((c) => c.end(`w${h.id}`));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(async () => {
  h.signal('listening');
  await h.signals('listening', 2);
  if (h.id === 1) return h.pass('listening');
  const by = { w1: 0, w2: 0 };
  for (let i = 0; i < 20; i++) {
    h.stage(`connection ${i}: ${JSON.stringify(by)}`);
    by[await h.readAll({ port: h.port, host: '127.0.0.1' })]++;
  }
  h.assert.strictEqual(by.w1 + by.w2, 20);
  if (process.env.PARITY_POLICY === 'rr') {
    h.assert.ok(by.w1 > 0 && by.w2 > 0, `rr gave ${JSON.stringify(by)}`);
  }
  h.pass(JSON.stringify(by));
}));
