'use strict';
// Beside test-cluster-message.js: large messages (1 MiB of text) go both
// ways (Node's channel has no size limit): the worker sends one, then asks
// the primary for one (the harness's step sends the same text back).
const h = require('../common.js');

const big = 'abcdefghijklmnopqrstuvwxyz012345'.repeat(32 * 1024);
h.stage('send 1 MiB');
process.send({ big }, h.mustCall((err) => {
  h.assert.ifError(err);
  h.stage('receive 1 MiB');
  process.send('sent-big');
}));
process.on('message', h.mustCall((m) => {
  h.assert.strictEqual(typeof m.big, 'string');
  h.assert.strictEqual(m.big.length, big.length);
  h.assert.ok(m.big === big, 'the text received differs');
  h.pass(`${big.length} bytes each way`);
}));
