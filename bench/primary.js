// primary.js: Node's own cluster primary, the comparison side of the HTTP
// benchmark (make bench-http). It forks $BENCH_WORKERS (default 2) workers of
// hello.js, beside this file, with the scheduling policy $BENCH_SCHED_POLICY,
// else $NODE_CLUSTER_SCHED_POLICY, else rr:
//
//   rr    the primary accepts every connection and passes it to a worker in
//         turn (Node's default on Linux);
//   none  the primary binds the socket and shares it; workers accept
//         themselves.
//
// It writes one JSON object per line on stdout: {"msg":"fork","pid"},
// {"msg":"listening","pid","address","port"} and {"msg":"exit","pid",...}.
// SIGTERM or SIGINT stops the workers, then the primary.
'use strict';

const cluster = require('node:cluster');
const path = require('node:path');

const policy = process.env.BENCH_SCHED_POLICY || process.env.NODE_CLUSTER_SCHED_POLICY || 'rr';
if (policy !== 'rr' && policy !== 'none') {
  console.error(`primary.js: scheduling policy must be rr or none, got ${JSON.stringify(policy)}`);
  process.exit(2);
}
const workers = Number(process.env.BENCH_WORKERS || 2);
if (!Number.isInteger(workers) || workers < 1) {
  console.error(`primary.js: BENCH_WORKERS must be an integer >= 1, got ${JSON.stringify(process.env.BENCH_WORKERS)}`);
  process.exit(2);
}

// Must be set before the first setupPrimary() or fork().
cluster.schedulingPolicy = policy === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
cluster.setupPrimary({ exec: path.join(__dirname, 'hello.js') });

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let stopping = false;
cluster.on('fork', (w) => say({ msg: 'fork', pid: w.process.pid }));
cluster.on('listening', (w, addr) =>
  say({ msg: 'listening', pid: w.process.pid, address: addr.address, port: addr.port }));
cluster.on('exit', (w, code, signal) => {
  say({ msg: 'exit', pid: w.process.pid, code, signal, intended: stopping });
  if (stopping && Object.keys(cluster.workers).length === 0) process.exit(0);
});

for (let i = 0; i < workers; i++) cluster.fork();
say({ msg: 'primary', pid: process.pid, policy, workers });

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (stopping) process.exit(1);
    stopping = true;
    const live = Object.values(cluster.workers);
    if (live.length === 0) process.exit(0);
    for (const w of live) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(1), 5000).unref();
  });
}
