package supervisor

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// socketSender is a Node cluster worker that sends the first connection its
// server accepts to its primary (process.send(msg, socket)), then asks its
// server for its connections and closes it, reporting each answer as a
// message: {"count": n}, then "closed".
const socketSender = `const net = require('node:net');
const server = net.createServer((socket) => {
  process.send('socket', socket, (err) => {
    if (err) throw err;
    server.getConnections((err, count) => {
      if (err) throw err;
      process.send({count});
      server.close((err) => {
        if (err) throw err;
        process.send('closed');
      });
    });
  });
});
server.listen(+process.env.PORT, '127.0.0.1');
`

// TestNodeWorkerSendsSocketToPaddock: a socket a worker sends to paddock is
// acknowledged and closed there (its client sees the connection end), its
// message is a message event, and the questions Node's worker then asks
// about the sockets it sent (NODE_SOCKET_GET_COUNT from getConnections,
// NODE_SOCKET_NOTIFY_CLOSE from close) are answered: none open, all
// closed, so that both call back.
func TestNodeWorkerSendsSocketToPaddock(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"rr", "none"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			h := startNode(t, socketSender, fmt.Sprintf(`
apps:
  web:
    exec: ./server.js
    schedulingPolicy: %s
    readiness: listening
    restart: never
    env: {PORT: "%d"}
`, policy, port))
			h.waitEvent("listening", isType(EventListening))
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			h.waitEvent("the socket's message", func(e Event) bool { return e.Type == EventMessage && e.Detail == `"socket"` })
			h.waitEvent("getConnections' answer", func(e Event) bool { return e.Type == EventMessage && e.Detail == `{"count":0}` })
			h.waitEvent("close's callback", func(e Event) bool { return e.Type == EventMessage && e.Detail == `"closed"` })
			// Nobody holds the connection any more.
			c.SetReadDeadline(time.Now().Add(testkit.Patience))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("the client read %d bytes, %v: want the end of the connection", n, err)
			}
		})
	}
}
