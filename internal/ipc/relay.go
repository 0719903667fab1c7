package ipc

// RelayQueueLen is how many messages may wait to be written to a worker
// for SendRelayed to queue one more: messages relayed from other workers
// take at most this share of the worker's queue (QueueLen), so that the
// replies the protocol requires of the supervisor (ACKs, the answers to
// queryServer and exitedAfterDisconnect) always find room, and a worker
// that does not read its channel loses relayed messages, not its channel.
const RelayQueueLen = QueueLen / 2

// RelayQueueBytes bounds the bytes of the relayed messages that may wait to
// be written to a worker, as RelayQueueLen bounds their number: messages may
// be as long as MaxMessage, and a worker that reads slowly must not make
// the supervisor hold hundreds of them. One message is always taken when
// none waits, so that the longest can be relayed. The line being written
// is not counted.
const RelayQueueBytes = MaxMessage

// SendRelayed queues line, one complete JSON value followed by "\n" that
// another worker sent (the supervisor's ipc.relay), unless RelayQueueLen
// messages already wait to be written to this worker, or relayed ones of
// more than RelayQueueBytes in all with line: it returns ErrQueueFull then,
// and ErrClosed once the channel is closing. It never blocks. line is only
// read, so one line may be queued to many channels.
func (c *Channel) SendRelayed(line []byte) error {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.closing {
		return ErrClosed
	}
	if c.unwritten.Load() >= RelayQueueLen {
		return ErrQueueFull
	}
	n := int64(len(line))
	if waiting := c.relayedBytes.Load(); waiting > 0 && waiting+n > RelayQueueBytes {
		return ErrQueueFull
	}
	c.unwritten.Add(1)
	c.relayedBytes.Add(n)
	select {
	case c.queue <- outgoing{line: line, fd: -1, relayed: n}:
		return nil
	default:
		c.unwritten.Add(-1)
		c.relayedBytes.Add(-n)
		return ErrQueueFull
	}
}
