// A plain Node HTTP server. Under paddock it runs as a cluster worker:
// paddock is its primary, listens on port 8000 for all the workers and
// hands each connection to the next one.
const cluster = require('node:cluster');
const http = require('node:http');

const id = cluster.isWorker ? cluster.worker.id : 0;
const greeting = process.env.GREETING || 'hello';

http.createServer((req, res) => {
  res.end(`${greeting} from worker ${id}\n`);
}).listen(8000, () => console.log(`worker ${id} listening on 8000`));
