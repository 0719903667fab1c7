'use strict';
// common.js: what every parity case shares. A case is the worker side of
// one of Node's test-cluster-* tests, rewritten as a cluster worker script
// that runs under any primary. Each worker reports once: PASS or FAIL and a
// text, written to $PARITY_DIR/result.<worker id> and printed as a line
// ("parity <case> worker <id>: PASS ..."); a failing worker exits 1.
//
// A worker that never reports fails too: the watchdog below reports the
// stage it was stuck in after $PARITY_PATIENCE ms (the harness's own
// deadline is longer), and a worker that exits without reporting says so.
const assert = require('node:assert');
const cluster = require('node:cluster');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const dir = process.env.PARITY_DIR;
assert.ok(dir, 'PARITY_DIR is not set');
assert.ok(cluster.isWorker, 'a parity case runs as a cluster worker');
const id = cluster.worker.id;
const name = process.env.PARITY_CASE || path.basename(require.main.filename, '.js');

let reported = false;
let stageName = 'start';
let exitCode = null; // set by passAtExit: the exit code that passes
const calls = []; // mustCall records: {what, want, got}

function report(ok, text) {
  if (reported) return;
  reported = true;
  const line = `${ok ? 'PASS' : 'FAIL'} ${text}`.replace(/\n/g, '\n    ');
  fs.writeFileSync(path.join(dir, `result.${id}`), line + '\n');
  console.log(`parity ${name} worker ${id}: ${line}`);
}

// unmet returns the description of the first mustCall whose count is wrong.
function unmet() {
  const c = calls.find((c) => c.got !== c.want);
  return c && `${c.what}: called ${c.got} times, want ${c.want}`;
}

// stage names what the worker is doing, for the report of a worker that hangs.
function stage(s) {
  stageName = s;
}

// pass reports success, once every mustCall has been called as often as it
// should; the worker goes on running.
function pass(text = 'ok') {
  const bad = unmet();
  if (bad) return fail(new Error(bad));
  report(true, text);
}

// fail reports the error and ends the worker with exit code 1.
function fail(err) {
  report(false, `[${stageName}] ${(err && err.stack) || err}`);
  process.exit(1);
}

// passAtExit makes the worker pass when it exits with code, every mustCall
// met: for cases whose point is that the worker ends, and how.
function passAtExit(code = 0) {
  exitCode = code;
}

process.on('exit', (code) => {
  if (reported) return;
  if (exitCode === null) {
    report(false, `[${stageName}] exited with code ${code} before reporting`);
  } else if (code !== exitCode) {
    report(false, `[${stageName}] exited with code ${code}, want ${exitCode}`);
  } else {
    const bad = unmet();
    report(!bad, bad || `exited with code ${code}`);
  }
});

function onUncaught(err) {
  fail(err);
}
process.on('uncaughtException', onUncaught);

// allowUncaught removes the harness's uncaughtException handler, for a case
// that installs its own.
function allowUncaught() {
  process.removeListener('uncaughtException', onUncaught);
}

const patience = Number(process.env.PARITY_PATIENCE) || 45000;
setTimeout(() => fail(new Error(`no result after ${patience} ms`)), patience).unref();

// mustCall wraps fn; the wrapper must have been called exactly times times
// by pass() (or by the exit, with passAtExit).
function mustCall(fn = () => {}, times = 1, what = fn.name || 'callback') {
  const c = { what, want: times, got: 0 };
  calls.push(c);
  return function(...args) {
    c.got++;
    return fn.apply(this, args);
  };
}

// mustNotCall returns a function that fails the case when called.
function mustNotCall(what) {
  return (...args) => fail(new Error(`${what} should not be called (arguments: ${args.map(String).join(', ')})`));
}

// file returns a path in the case's directory.
function file(...parts) {
  return path.join(dir, ...parts);
}

// signal tells the case's other workers that this one reached name, with an
// optional value: the workers of a case coordinate through files, so that
// no case needs its primary to relay messages.
function signal(name, value = '') {
  const f = file(`sig.${name}.${id}`);
  fs.writeFileSync(f + '.tmp', String(value));
  fs.renameSync(f + '.tmp', f);
}

// until resolves with the first true value cond() returns (or resolves
// with: cond may be async), checking every 20 ms; the watchdog bounds it.
function until(cond) {
  return new Promise((resolve, reject) => {
    const check = () => {
      Promise.resolve().then(cond).then((v) => {
        if (v) resolve(v);
        else setTimeout(check, 20);
      }, reject);
    };
    check();
  });
}

// signals resolves with the values of name from count workers, ordered by
// worker id.
function signals(name, count) {
  const prefix = `sig.${name}.`;
  return until(() => {
    const ids = fs.readdirSync(dir)
      .filter((f) => f.startsWith(prefix) && !f.endsWith('.tmp'))
      .map((f) => Number(f.slice(prefix.length)))
      .sort((a, b) => a - b);
    if (ids.length < count) return null;
    return ids.map((w) => fs.readFileSync(file(`${prefix}${w}`), 'utf8'));
  });
}

// readAll connects with net.connect(options) and resolves with everything
// the server wrote before it ended the connection.
function readAll(options) {
  return new Promise((resolve, reject) => {
    let data = '';
    const c = net.connect(options);
    c.setEncoding('utf8');
    c.on('data', (d) => { data += d; });
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
}

module.exports = {
  assert, id, dir, name,
  port: Number(process.env.PORT),
  port2: Number(process.env.PORT2),
  stage, pass, fail, passAtExit, allowUncaught, mustCall, mustNotCall,
  file, signal, signals, until, readAll,
};
