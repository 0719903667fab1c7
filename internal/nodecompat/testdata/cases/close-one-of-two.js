'use strict';
// Issue 14, cause 1: of several servers of one worker (on port 0 each),
// closing one leaves the others serving, whichever was closed: here the
// last one listened (c), then the first (a); b serves to the end.
const h = require('../common.js');
const net = require('node:net');

const servers = ['a', 'b', 'c'].map((name) => net.createServer((conn) => conn.end(name)));
const [a, b, c] = servers;
const listen = (s) => new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
const close = (s) => new Promise((resolve) => s.close(resolve));
(async () => {
  for (const [i, s] of servers.entries()) {
    h.stage(`listen ${'abc'[i]}`);
    await listen(s);
  }
  const [pa, pb] = [a.address().port, b.address().port];
  h.stage('close c');
  await close(c);
  h.stage(`connect to a (${pa}) with c closed`);
  h.assert.strictEqual(await h.readAll({ port: pa, host: '127.0.0.1' }), 'a');
  h.stage('close a');
  await close(a);
  h.stage(`connect to b (${pb}) with a and c closed`);
  h.assert.strictEqual(await h.readAll({ port: pb, host: '127.0.0.1' }), 'b');
  h.pass(`a served after c closed, b after a closed`);
})().catch(h.fail);
