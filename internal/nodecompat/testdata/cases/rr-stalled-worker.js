'use strict';
// Issue 14, cause 7 (round_robin_handle.js hands a worker its next
// connection only once it answered the previous one): worker 1 blocks its
// event loop; worker 2 then opens 20 connections to their shared port. At
// most one of them may go to the stalled worker (the one it was free for);
// the others are served by worker 2. Worker 1 wakes when worker 2 has had 19
// answers (or after 20 s, so that a failing run ends), and answers its own.
const h = require('../common.js');
const fs = require('node:fs');
const net = require('node:net');

const CONNECTIONS = 20;
const server = net.createServer((c) => c.end(`w${h.id}`));
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(async () => {
  h.signal('listening');
  await h.signals('listening', 2);
  if (h.id === 1) {
    h.stage('stalled');
    h.signal('stalled');
    const release = h.file('release');
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const until = Date.now() + 20000;
    while (!fs.existsSync(release) && Date.now() < until) Atomics.wait(nap, 0, 0, 10);
    h.pass('woke');
    return;
  }
  h.stage('wait for worker 1 to stall');
  await h.signals('stalled', 1);
  const by = { w1: 0, w2: 0 };
  let answered = 0;
  h.stage('connect');
  await Promise.all(Array.from({ length: CONNECTIONS }, () =>
    h.readAll({ port: h.port, host: '127.0.0.1' }).then((who) => {
      by[who]++;
      if (++answered === CONNECTIONS - 1) fs.writeFileSync(h.file('release'), '');
      h.stage(`connect: ${JSON.stringify(by)}`);
    })));
  h.assert.ok(by.w1 <= 1, `the stalled worker was handed ${by.w1} of ${CONNECTIONS} connections`);
  h.pass(JSON.stringify(by));
}));
