'use strict';
// Beside test-cluster-message.js: a large message (1 MiB of text) goes to
// the primary and comes back intact (Node's channel has no size limit).
const h = require('../common.js');

const big = 'abcdefghijklmnopqrstuvwxyz012345'.repeat(32 * 1024);
h.stage('send 1 MiB');
process.send({ echo: big });
process.on('message', h.mustCall((m) => {
  h.assert.strictEqual(typeof m.echo, 'string');
  h.assert.strictEqual(m.echo.length, big.length);
  h.assert.ok(m.echo === big, 'the echoed text differs');
  h.pass(`${big.length} bytes each way`);
}));
