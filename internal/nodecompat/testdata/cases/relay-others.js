'use strict';
// From issue 14, cause 8: a primary that relays messages between workers,
// as @socket.io/cluster-adapter's setupPrimary() does (the harness's
// primaries relay every message whose kind is "relay" to every other
// worker: Node's primary by cluster.on('message'), paddock by ipc.relay).
// Each worker says hello, and answers each hello it gets, naming whom it
// answers; it passes once it heard from every other worker ($RELAY_PEERS),
// intact, and it never gets its own messages back.
const h = require('../common.js');
const cluster = require('node:cluster');

const id = cluster.worker.id;
const peers = Number(process.env.RELAY_PEERS);
const heard = new Set();
h.stage(`hearing from ${peers} other workers`);
process.on('message', (m) => {
  if (m === null || typeof m !== 'object' || m.kind !== 'relay') return;
  h.assert.notStrictEqual(m.from, id, 'a worker got its own message back');
  h.assert.deepStrictEqual(m.text, 'héllo ✓ "quoted" \\ back');
  if (m.type === 'hello') process.send({ kind: 'relay', type: 'answer', from: id, to: m.from, text: m.text });
  if (m.type === 'hello' || m.to === id) heard.add(m.from);
  if (heard.size === peers) h.pass(`heard from ${peers} other workers`);
});
process.send({ kind: 'relay', type: 'hello', from: id, text: 'héllo ✓ "quoted" \\ back' });
