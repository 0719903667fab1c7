'use strict';
// From test-cluster-fork-env.js: the environment the primary gives the
// worker reaches it, over the primary's own (cluster_test_overwrite is
// "old" in the primary's environment, "new" in the worker's).
const h = require('../common.js');
const cluster = require('node:cluster');

h.assert.strictEqual(process.env.cluster_test_prop, 'custom');
h.assert.strictEqual(process.env.cluster_test_overwrite, 'new');
const result = cluster.worker.send({ prop: process.env.cluster_test_prop });
h.assert.strictEqual(result, true);
h.pass();
