'use strict';
// Issue 14, cause 1 (Node keys a handle by address:port:addressType:fd:index,
// as test-cluster-child-index-net.js exercises): two servers of one worker
// that both listen on port 0 get two different ports, and each serves its
// own connections.
const h = require('../common.js');
const net = require('node:net');

const a = net.createServer((c) => c.end('a'));
const b = net.createServer((c) => c.end('b'));
h.stage('listen a');
a.listen(0, '127.0.0.1', h.mustCall(() => {
  h.stage('listen b');
  b.listen(0, '127.0.0.1', h.mustCall(async () => {
    const pa = a.address().port;
    const pb = b.address().port;
    h.assert.notStrictEqual(pa, pb, `both servers on port ${pa}`);
    h.stage(`connect to a (${pa})`);
    h.assert.strictEqual(await h.readAll({ port: pa, host: '127.0.0.1' }), 'a');
    h.stage(`connect to b (${pb})`);
    h.assert.strictEqual(await h.readAll({ port: pb, host: '127.0.0.1' }), 'b');
    h.pass(`ports ${pa} and ${pb}`);
  }));
}));
