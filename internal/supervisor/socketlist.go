package supervisor

import (
	"encoding/json"

	"github.com/paddock-sh/paddock/internal/ipc"
)

// This file answers the questions a Node worker asks about the connections
// it sent to its primary. When a worker sends a net.Socket its server
// accepted (process.send(msg, socket)), Node's child_process module keeps,
// on the worker's side, a list of the sockets sent for that server
// (SocketListSend, keyed by the server's _connectionKey, which rides on the
// NODE_HANDLE line as "key"). From then on the server's close() and
// getConnections() ask the receiving process about them and wait for its
// answer (SocketListReceive in Node's primary):
//
//	{"cmd":"NODE_SOCKET_NOTIFY_CLOSE","key":K} → {"cmd":"NODE_SOCKET_ALL_CLOSED","key":K}
//	{"cmd":"NODE_SOCKET_GET_COUNT","key":K}    → {"cmd":"NODE_SOCKET_COUNT","key":K,"count":N}
//
// Node's primary answers ALL_CLOSED once the sockets it received of that
// key are closed, and COUNT with how many are open. paddock keeps no handle a
// worker sends (handleIPC closes each at once), so every socket of every key
// is closed: ALL_CLOSED at once, and a count of 0. Unanswered, the worker's
// server.close() never calls back and a worker-initiated disconnect never
// completes.

// Node's internal messages about the sockets a worker sent.
const (
	cmdSocketNotifyClose = "NODE_SOCKET_NOTIFY_CLOSE"
	cmdSocketAllClosed   = "NODE_SOCKET_ALL_CLOSED"
	cmdSocketGetCount    = "NODE_SOCKET_GET_COUNT"
	cmdSocketCount       = "NODE_SOCKET_COUNT"
)

// socketListRequest is a worker's question about the sockets it sent.
type socketListRequest struct {
	// Key is the server's connection key as the worker sent it; absent
	// (nil) when the worker's was undefined. The answer echoes it as it
	// came: the worker matches it with ===.
	Key json.RawMessage `json:"key"`
}

// answerSocketList answers m, an internal message of w, when it asks about
// the sockets w sent (NODE_SOCKET_NOTIFY_CLOSE, NODE_SOCKET_GET_COUNT), and
// reports whether it was one of those. The answer is queued on w's channel
// without blocking; one the channel cannot take stops the worker, as any
// reply the protocol requires (owner.replyFailed).
func (o *owner) answerSocketList(w *worker, m ipc.Message) bool {
	var answer map[string]any
	switch m.Cmd {
	case cmdSocketNotifyClose:
		answer = map[string]any{"cmd": cmdSocketAllClosed}
	case cmdSocketGetCount:
		answer = map[string]any{"cmd": cmdSocketCount, "count": 0}
	default:
		return false
	}
	var req socketListRequest
	if err := json.Unmarshal(m.Raw, &req); err != nil {
		o.channelFault(w, &ipc.ProtocolError{Reason: "bad " + m.Cmd + " message: " + err.Error()})
		return true
	}
	if len(req.Key) > 0 {
		answer["key"] = req.Key
	}
	if err := w.cl.ch.Send(answer, -1, nil); err != nil {
		o.replyFailed(w, m.Cmd, err)
	}
	return true
}
