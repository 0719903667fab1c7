'use strict';
// From test-cluster-cwd.js: the working directory the primary sets is the
// worker's.
const h = require('../common.js');
const fs = require('node:fs');

h.assert.strictEqual(fs.realpathSync(process.cwd()), fs.realpathSync(h.file('sub')));
h.pass(process.cwd());
