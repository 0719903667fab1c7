'use strict';
// From test-cluster-advanced-serialization.js (issue 14, cause 9): with
// serialization 'advanced' the channel carries what JSON cannot (a circular
// object, a BigInt, a Map); a message from the primary still arrives intact.
const h = require('../common.js');

const circular = {};
circular.circular = circular;
h.stage('send values JSON cannot carry');
h.assert.doesNotThrow(() => process.send({ circular, big: 10n, map: new Map([[1, 2]]) }));
process.send({ echo: 'plain' });
process.on('message', h.mustCall((m) => {
  h.assert.deepStrictEqual(m, { echo: 'plain' });
  h.pass();
}));
