'use strict';
// client.js PORT ROOM: a socket.io client that connects to the server on
// 127.0.0.1:PORT over WebSocket and joins ROOM. It prints one line per
// thing that happens: "joined <worker id>", "asked" (it answered an 'ask'
// with "client-answer"), "news <text>" (then it exits 0), or
// "error <message>" (then it exits 1).
const { io } = require('socket.io-client');
const [port, room] = process.argv.slice(2);
const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
socket.on('connect', () => socket.emit('join', room, (worker) => console.log(`joined ${worker}`)));
socket.on('ask', (ack) => {
  ack('client-answer');
  console.log('asked');
});
socket.on('news', (text) => {
  console.log(`news ${text}`);
  socket.close();
  process.exit(0);
});
socket.on('connect_error', (err) => {
  console.log(`error ${err.message}`);
  process.exit(1);
});
