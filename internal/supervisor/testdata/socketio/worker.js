'use strict';
// worker.js: a socket.io server with @socket.io/cluster-adapter, as a
// cluster worker (under paddock, or under a Node primary that calls
// setupPrimary()). It listens on a port of its own (exclusive: the cluster
// does not share it), reports {port, worker} to its primary, and obeys the
// primary's messages:
//   {emit: ROOM, text: T}  io.to(ROOM).emit('news', T), then reports {emitted: T}
//   {fetch: ROOM}          io.in(ROOM).fetchSockets() until it finds a socket
//                          (the adapter learns the other servers by their
//                          heartbeats), then reports {fetched: N, rooms: [...]}
//   {ask: ROOM}            io.to(ROOM).emit('ask') with an acknowledgement,
//                          then reports {answers: [what the clients answered]}
//   {ping: N}              io.serverSideEmit('ping') with an acknowledgement
//                          until N other servers answer (the adapter asks
//                          only the servers it knows, and gives up on a
//                          request after 5 s), then reports {pongs: [their
//                          worker ids]}
// A client that emits 'join' ROOM is put in that room; the acknowledgement
// carries the worker's id.
const cluster = require('node:cluster');
const http = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/cluster-adapter');

if (cluster.isPrimary) throw new Error('worker.js runs as a cluster worker');
const id = cluster.worker.id;
const httpServer = http.createServer();
// Heartbeats every second make the servers learn each other soon; a server
// is forgotten only after two minutes without one, however loaded the
// machine.
const io = new Server(httpServer, { adapter: createAdapter({ heartbeatInterval: 1000, heartbeatTimeout: 120000 }) });
const pause = () => new Promise((resolve) => setTimeout(resolve, 100));

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(room);
    ack(id);
  });
});
io.on('ping', (ack) => ack(id));

process.on('message', async (m) => {
  if (m === null || typeof m !== 'object' || m.source === '_sio_adapter') return;
  if (m.emit !== undefined) {
    io.to(m.emit).emit('news', m.text);
    process.send({ emitted: m.text, worker: id });
  } else if (m.fetch !== undefined) {
    for (let attempt = 0; attempt < 600; attempt++) {
      const sockets = await io.in(m.fetch).timeout(60000).fetchSockets();
      if (sockets.length > 0) {
        process.send({ fetched: sockets.length, rooms: sockets.map((s) => [...s.rooms].sort()), worker: id });
        return;
      }
      await pause();
    }
    process.send({ fetched: 0, worker: id });
  } else if (m.ask !== undefined) {
    io.to(m.ask).timeout(60000).emit('ask', (err, answers) => {
      process.send({ answers: err ? String(err) : answers, worker: id });
    });
  } else if (m.ping !== undefined) {
    let pongs = [];
    for (let attempt = 0; attempt < 600 && pongs.length < m.ping; attempt++) {
      if (attempt > 0) await pause();
      pongs = await new Promise((resolve) => io.serverSideEmit('ping', (err, got) => resolve(got || [])));
    }
    process.send({ pongs: pongs.sort(), worker: id });
  }
});

// Retired (cluster's disconnect): the server is not one the cluster
// shares, so close it, and the adapter; then exit, as the timers of the
// adapter's requests (5 s each) would keep the worker a while.
process.on('disconnect', () => io.close(() => process.exit(0)));

httpServer.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
  process.send({ port: httpServer.address().port, worker: id });
});
