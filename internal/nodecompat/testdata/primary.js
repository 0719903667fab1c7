'use strict';
// primary.js: the parity harness's reference primary, Node's own cluster
// module. argv[2] is the run as JSON ({exec, args, execArgv, cwd, env,
// instances, policy, serialization, relay}); commands arrive as JSON lines on stdin
// ({op: fork | send | disconnect-all | disconnect-newest, worker, message});
// events leave as JSON lines on descriptor 3.
const cluster = require('node:cluster');
const fs = require('node:fs');
const run = JSON.parse(process.argv[2]);
cluster.schedulingPolicy = run.policy === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
const { exec, args, execArgv, cwd, serialization } = run; // those given only: undefined would override a default
cluster.setupPrimary(JSON.parse(JSON.stringify({ exec, args, execArgv, cwd, serialization,
                                                 stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })));
const emit = (e) => {
  let line;
  try { line = JSON.stringify(e); } catch { line = JSON.stringify({ ...e, message: '[not JSON]' }); }
  fs.writeSync(3, line + '\n');
};
const fork = () => {
  const w = cluster.fork(run.env);
  emit({ type: 'fork', worker: w.id, pid: w.process.pid });
  w.on('online', () => emit({ type: 'online', worker: w.id }))
    .on('listening', (a) => emit({ type: 'listening', worker: w.id, detail: JSON.stringify(a) }))
    .on('message', (m) => emit({ type: 'message', worker: w.id, message: m }))
    .on('exit', (code, signal) => emit({ type: 'exit', worker: w.id, exitCode: code, signal }));
};
// relay {key, value}: every message whose key is value goes to every other
// worker, as @socket.io/cluster-adapter's setupPrimary() relays its own.
if (run.relay) {
  cluster.on('message', (w, m) => m !== null && typeof m === 'object' && m[run.relay.key] === run.relay.value &&
    Object.values(cluster.workers).forEach((o) => o !== w && o.send(m)));
}
for (let i = 0; i < run.instances; i++) fork();
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const { op, worker, message } = JSON.parse(line);
  const ws = Object.values(cluster.workers);
  if (op === 'fork') fork();
  else if (op === 'send') ws.filter((w) => !worker || w.id === worker).forEach((w) => w.send(message));
  else if (op === 'disconnect-all') cluster.disconnect();
  else if (op === 'disconnect-newest' && ws.length > 0) ws[ws.length - 1].disconnect();
});
