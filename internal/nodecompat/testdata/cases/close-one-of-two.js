'use strict';
// Issue 14, cause 1: of two servers of one worker (on port 0 each), closing
// one leaves the other serving.
const h = require('../common.js');
const net = require('node:net');

const a = net.createServer((c) => c.end('a'));
const b = net.createServer((c) => c.end('b'));
h.stage('listen a');
a.listen(0, '127.0.0.1', h.mustCall(() => {
  h.stage('listen b');
  b.listen(0, '127.0.0.1', h.mustCall(() => {
    const pb = b.address().port;
    h.stage('close a');
    a.close(h.mustCall(async () => {
      h.stage(`connect to b (${pb})`);
      h.assert.strictEqual(await h.readAll({ port: pb, host: '127.0.0.1' }), 'b');
      h.pass(`b still serves on ${pb}`);
    }));
  }));
}));
