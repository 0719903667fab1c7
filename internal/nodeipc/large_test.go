package nodeipc

import (
	"bytes"
	"errors"
	"testing"
)

// jsonLine returns a line holding a JSON string value of exactly n bytes,
// and its "\n".
func jsonLine(n int) []byte {
	b := bytes.Repeat([]byte{'x'}, n+1)
	b[0], b[n-1], b[n] = '"', '"', '\n'
	return b
}

// feedChunks gives data to d in reads of readBuffer bytes, as a socket
// delivers a long line, and returns the first error.
func feedChunks(d *decoder, data []byte, handle func(Line) error) error {
	for len(data) > 0 {
		n := min(len(data), readBuffer)
		if err := d.feed(data[:n], nil, handle); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// TestDefaultMaxLine: a Conn's decoder takes lines of up to MaxLine bytes
// by default (far more than the 1 MiB that was the limit once: Node's
// channel has none; TestFraming checks a limit's edges, and package ipc's
// TestMaxMessage lines of several MiB) and refuses a longer one as a
// violation, before it has gathered more than MaxLine bytes of it.
func TestDefaultMaxLine(t *testing.T) {
	if MaxLine < 64<<20 {
		t.Fatalf("MaxLine is %d bytes: real programs send more over Node's channel, which has no limit", MaxLine)
	}
	d := decoder{}
	if d.limit() != MaxLine {
		t.Fatalf("a decoder's limit is %d, want MaxLine", d.limit())
	}
	refuse := func(l Line) error { t.Errorf("delivered %d bytes", len(l.Raw)); return nil }
	err := d.feed([]byte(" "), nil, refuse)
	if err == nil {
		err = feedChunks(&d, jsonLine(MaxLine), refuse)
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Errorf("a line of MaxLine+1 bytes: %v, want a violation", err)
	}
	if cap(d.pending) > MaxLine {
		t.Errorf("it gathered %d bytes of it", cap(d.pending))
	}
}

// TestLongLineLeavesWithItsBuffer: a line gathered over many reads is
// handed over in the buffer it was gathered in, which the decoder lets go
// (Owned: no copy needed, and never overwritten by the next line), so that
// between lines a decoder holds no more than one read's worth, however
// long the lines were; a short line split between reads keeps its small
// buffer, which is used again.
func TestLongLineLeavesWithItsBuffer(t *testing.T) {
	d := decoder{max: 4 << 20}
	var kept []Line
	keep := func(l Line) error {
		if l.Owned {
			kept = append(kept, l)
		}
		return nil
	}
	first := jsonLine(3 << 20)
	second := append(bytes.Repeat([]byte("1"), 2<<20), '\n')
	if err := feedChunks(&d, append(first, second...), keep); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Fatalf("%d owned lines, want 2", len(kept))
	}
	if !bytes.Equal(kept[0].Raw, first[:len(first)-1]) || !bytes.Equal(kept[1].Raw, second[:len(second)-1]) {
		t.Error("an owned line was changed after it was handed over")
	}
	if cap(d.pending) > readBuffer {
		t.Errorf("the decoder keeps a buffer of %d bytes between lines, want at most %d", cap(d.pending), readBuffer)
	}

	// Short lines split between reads: never owned, one small buffer.
	kept = nil
	var short []Line
	for range 100 {
		if err := d.feed([]byte(`{"a":`), nil, keep); err != nil {
			t.Fatal(err)
		}
		if err := d.feed([]byte("1}\n"), nil, func(l Line) error { short = append(short, l); return keep(l) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(kept) != 0 || len(short) != 100 || string(short[99].Raw) != `{"a":1}` {
		t.Errorf("short split lines: %d owned, %d delivered", len(kept), len(short))
	}
	if c := cap(d.pending); c == 0 || c > readBuffer {
		t.Errorf("a short split line's buffer: capacity %d, want a small one kept", c)
	}
}

// TestLongLineGrowsItsBufferByDoubling: gathering a line of n reads costs
// O(log n) allocations (the buffer doubles), not one per read or a growth
// by small steps, which copies the line over and over: reading stays linear
// in the line's length.
func TestLongLineGrowsItsBufferByDoubling(t *testing.T) {
	const reads = 256 // a 16 MiB line
	line := jsonLine(reads*readBuffer - 1)
	allocs := testing.AllocsPerRun(1, func() {
		d := decoder{max: 32 << 20}
		var n int
		for i := 0; i < len(line); i += readBuffer {
			// Handled without decoding: frame alone is measured.
			if err := d.frame(line[i:min(i+readBuffer, len(line))], func(Line) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
	})
	// 64 KiB → 16 MiB by doubling: 9 buffers; the JSON check of the
	// line allocates a few more.
	if allocs > 20 {
		t.Errorf("%v allocations to gather a line of %d reads, want at most 20", allocs, reads)
	}
}
