package ipc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// testLimit is the longest message of the tests that set one
// (SetMaxMessage): lower than MaxMessage, to keep them quick.
const testLimit = 4 << 20

// bigLine returns a user message of n bytes, "\n" included: {"big":"aaa..."}.
func bigLine(n int) []byte {
	return []byte(`{"big":"` + strings.Repeat("a", n-len(`{"big":""}`)-1) + "\"}\n")
}

// writeAll writes lines to the worker's end in another goroutine, and
// returns a channel that gets the first error (nil once all were written).
func writeAll(child *os.File, lines ...[]byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, l := range lines {
			if _, err := child.Write(l); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// TestMaxMessage: messages larger than the 1 MiB that was once the limit
// (Node's channel has none) arrive whole, in order, with the default
// limit; a line longer than the limit is a protocol violation that closes
// the channel.
func TestMaxMessage(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		c, child, err := Pair(7)
		if err != nil {
			t.Fatal(err)
		}
		defer child.Close()
		in := running(t, c)
		lines := [][]byte{bigLine(1<<20 + 1), bigLine(3 << 20), []byte("1\n"), bigLine(8 << 20)}
		written := writeAll(child, lines...)
		for i, l := range lines {
			m := receive(t, in)
			if !bytes.Equal(m.Raw, l[:len(l)-1]) {
				t.Errorf("message %d: %d bytes, want the %d bytes sent", i, len(m.Raw), len(l)-1)
			}
			m.Release()
		}
		if err := <-written; err != nil {
			t.Fatal(err)
		}
		if c.Err() != nil {
			t.Errorf("channel error %v", c.Err())
		}
	})
	for _, tc := range []struct {
		name      string
		size      int // of the line, "\n" included
		violation bool
	}{
		{"at the limit", testLimit + 1, false},
		{"over the limit", testLimit + 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, child, err := Pair(7)
			if err != nil {
				t.Fatal(err)
			}
			defer child.Close()
			c.SetMaxMessage(testLimit)
			in := running(t, c)
			written := writeAll(child, bigLine(tc.size), []byte("1\n"))
			if tc.violation {
				select {
				case <-c.Closed():
				case m := <-in:
					t.Fatalf("delivered %d bytes", len(m.Raw))
				case <-time.After(testkit.Patience):
					t.Fatal("channel still open")
				}
				var pe *ProtocolError
				if !errors.As(c.Err(), &pe) || !strings.Contains(pe.Reason, "longer than 4194304 bytes") {
					t.Errorf("channel error %v, want a line too long", c.Err())
				}
				return
			}
			if m := receive(t, in); len(m.Raw) != tc.size-1 {
				t.Errorf("%d bytes delivered, want %d", len(m.Raw), tc.size-1)
			} else {
				m.Release()
			}
			if m := receive(t, in); string(m.Raw) != "1" {
				t.Errorf("then %q, want 1", m.Raw)
			}
			if err := <-written; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLargeMessagesOneAtATime: a channel holds one large message at a
// time: once it delivered one, its reader reads nothing more (the messages
// after it, large or small, stay in the worker's socket) until the
// receiver releases it, so that a worker cannot make the supervisor hold
// more of its messages than one (plus small ones). Small messages are not
// held back.
func TestLargeMessagesOneAtATime(t *testing.T) {
	c, child, err := Pair(7)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	in := running(t, c)
	// Small messages, not released: each arrives all the same.
	small := [][]byte{[]byte("1\n"), []byte(`{"a":2}` + "\n"), bigLine(BigMessage + 1)} // BigMessage bytes is not large
	written := writeAll(child, small...)
	for i, l := range small {
		if m := receive(t, in); !bytes.Equal(m.Raw, l[:len(l)-1]) {
			t.Fatalf("small message %d: %d bytes, want %d", i, len(m.Raw), len(l)-1)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	lines := [][]byte{bigLine(BigMessage + 2), bigLine(2 << 20), []byte("3\n")}
	written = writeAll(child, lines...)
	first := receive(t, in)
	if len(first.Raw) != BigMessage+1 {
		t.Fatalf("first %d bytes, want %d", len(first.Raw), BigMessage+1)
	}
	testkit.WaitFor(t, "the reader to wait for the release of the first large message", c.awaiting.Load)
	if n := len(in); n != 0 {
		t.Fatalf("%d more messages delivered while a large one is held", n)
	}
	first.Release()
	first.Release() // again: nothing
	second := receive(t, in)
	if len(second.Raw) != 2<<20-1 {
		t.Fatalf("second %d bytes, want %d", len(second.Raw), 2<<20-1)
	}
	testkit.WaitFor(t, "the reader to wait for the release of the second", c.awaiting.Load)
	if n := len(in); n != 0 {
		t.Fatalf("%d more messages delivered while a large one is held", n)
	}
	second.Release()
	if m := receive(t, in); string(m.Raw) != "3" {
		t.Fatalf("then %q, want 3", m.Raw)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	// A large message released after its channel closed is no matter.
	big := writeAll(child, bigLine(1<<20))
	held := receive(t, in)
	c.Close()
	held.Release()
	<-big
}

// BenchmarkReadLargeMessages: a worker writes messages of about 1 MiB each
// over a real socketpair as fast as the channel reads them; the consumer
// takes and releases each. It reports the channel's reading throughput.
func BenchmarkReadLargeMessages(b *testing.B) {
	const size = 1<<20 - 64
	line := bigLine(size)
	c, child, err := Pair(1)
	if err != nil {
		b.Fatal(err)
	}
	in := make(chan Message, 64)
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(context.Background(), in) })
	wg.Go(func() {
		defer child.Close()
		for range b.N {
			if _, err := child.Write(line); err != nil {
				return
			}
		}
	})
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m := <-in
		if len(m.Raw) != size-1 {
			b.Fatalf("message of %d bytes, want %d", len(m.Raw), size-1)
		}
		m.Release()
	}
	b.StopTimer()
	c.Close()
	wg.Wait()
}
