'use strict';
// From test-cluster-setup-primary-argv.js and test-cluster-setup-primary.js:
// the worker gets the arguments and the Node options the primary set up.
const h = require('../common.js');

h.assert.deepStrictEqual(process.argv.slice(2), ['custom', 'argv']);
h.assert.ok(process.execArgv.includes('--no-deprecation'), `execArgv ${process.execArgv}`);
h.pass();
