'use strict';
// From test-cluster-net-server-drop-connection.js: worker 1's server takes
// at most one connection (maxConnections), so it answers the primary's
// later handoffs with accepted:false, and the primary gives those
// connections to worker 2: of 10 connections that stay open, worker 1
// serves 1 and worker 2 the other 9.
const h = require('../common.js');
const net = require('node:net');

const TOTAL = 10;
const held = [];
const server = net.createServer((c) => {
  held.push(c);
  c.write(`w${h.id}`);
});
if (h.id === 1) server.maxConnections = 1;
h.stage('listen');
server.listen(h.port, '127.0.0.1', h.mustCall(async () => {
  h.signal('listening');
  await h.signals('listening', 2);
  if (h.id === 1) {
    h.stage('serve');
    await h.signals('done', 1);
    h.assert.strictEqual(held.length, 1);
    return h.pass('served 1');
  }
  const by = { w1: 0, w2: 0 };
  const clients = [];
  h.stage('connect');
  await Promise.all(Array.from({ length: TOTAL }, () => new Promise((resolve, reject) => {
    const c = net.connect(h.port, '127.0.0.1');
    clients.push(c);
    c.setEncoding('utf8');
    c.once('data', (who) => {
      by[who]++;
      h.stage(`connect: ${JSON.stringify(by)}`);
      resolve();
    });
    c.on('error', reject);
    c.on('end', () => reject(new Error(`a connection ended unanswered (so far ${JSON.stringify(by)})`)));
  })));
  h.assert.deepStrictEqual(by, { w1: 1, w2: TOTAL - 1 });
  for (const c of clients) c.destroy();
  h.signal('done');
  h.pass(JSON.stringify(by));
}));
