// hello.js: the hello-world HTTP worker of the HTTP benchmark (make bench-http).
//
// The same file runs under paddock and under Node's own cluster primary
// (bench/primary.js), unchanged:
//
//   - under paddock (LISTEN_FDS set for this process, the systemd way) it
//     calls server.listen({fd: 3}). Without an IPC channel (`ipc: off`) it
//     serves the socket inherited as descriptor 3; as one of paddock's
//     cluster workers (`ipc: auto`, paddock's default for node), Node's
//     cluster module sends that listen() to paddock, which answers with the
//     app's socket (none) or a socket of the worker's own (reuseport);
//   - otherwise it listens on $PORT (default 0) at $HOST (default
//     127.0.0.1); in a cluster worker of bench/primary.js that listen() goes
//     through Node's primary.
//
// It counts the requests it answers and the connections it accepts and, when
// $HELLO_COUNT_DIR is set, writes "<requests> <connections>" to
// $HELLO_COUNT_DIR/<pid> once it listens, every 100 ms (when a count moved),
// and on SIGTERM/SIGINT. The file is written under a temporary name and
// renamed, so a reader never sees a partial line.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const body = 'Hello, world!\n';
const headers = {
  'Content-Type': 'text/plain',
  'Content-Length': Buffer.byteLength(body),
};

let requests = 0;
let connections = 0;
const server = http.createServer((req, res) => {
  requests++;
  res.writeHead(200, headers);
  res.end(body);
});
server.on('connection', () => {
  connections++;
});

const dir = process.env.HELLO_COUNT_DIR;
const file = dir ? path.join(dir, String(process.pid)) : '';
let written = '';

function writeCount() {
  const line = `${requests} ${connections}\n`;
  if (!file || line === written) return;
  const tmp = `${file}.tmp`;
  try {
    fs.writeFileSync(tmp, line);
    fs.renameSync(tmp, file);
    written = line;
  } catch (err) {
    // The directory may be gone when the runner has finished; nothing to do.
  }
}

server.on('listening', () => {
  writeCount(); // the first file, "0 0", tells the runner this worker listens
  setInterval(writeCount, 100).unref();
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    writeCount();
    process.exit(0);
  });
}

const inherited =
  process.env.LISTEN_FDS !== undefined &&
  Number(process.env.LISTEN_FDS) >= 1 &&
  (process.env.LISTEN_PID === undefined || Number(process.env.LISTEN_PID) === process.pid);

if (inherited) {
  server.listen({ fd: 3 });
} else {
  server.listen(Number(process.env.PORT || 0), process.env.HOST || '127.0.0.1');
}
