package procs

import (
	"bufio"
	"errors"
	"io"
	"os"
)

// maxLine is the longest line a LinePrefixer emits whole (64 KiB); a
// longer line is emitted in pieces of maxLine bytes.
const maxLine = 64 << 10

// LinePrefixer reads a worker's output pipe and writes each line to Out with
// Prefix in front, one Write per line, so one captured line is one emitted
// line. A last line without a newline is emitted with one, and a line
// longer than 64 KiB in pieces of 64 KiB, each ended by a newline, unless
// Exact is set.
type LinePrefixer struct {
	Prefix string
	Out    io.Writer
	// Exact, set before Run, writes the bytes read unchanged, still one
	// Write per line: no newline is added to a piece of a line longer
	// than 64 KiB nor to a last line without one. It is for output copied
	// without Prefix, which must read exactly as the worker wrote it.
	Exact bool
	// Tap, when set before Run, also receives each line, without prefix
	// and newline; it must not keep the slice.
	Tap  func(line []byte)
	r    *os.File
	done chan struct{}
}

// NewOutputPipe returns a pipe whose write end is to be given to a worker
// (and closed by the caller once the worker started) and a LinePrefixer
// reading the other end. Run the prefixer with Run.
func NewOutputPipe(prefix string, out io.Writer) (*LinePrefixer, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	return &LinePrefixer{Prefix: prefix, Out: out, r: r, done: make(chan struct{})}, w, nil
}

// Run copies lines until every writer has closed the pipe, or Close is
// called.
func (l *LinePrefixer) Run() {
	defer close(l.done)
	defer l.r.Close()
	br := bufio.NewReaderSize(l.r, maxLine)
	buf := make([]byte, 0, maxLine+len(l.Prefix)+1)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf = append(buf[:0], l.Prefix...)
			buf = append(buf, line...)
			ended := buf[len(buf)-1] == '\n'
			if !ended && !l.Exact {
				buf = append(buf, '\n')
				ended = true
			}
			_, _ = l.Out.Write(buf)
			if l.Tap != nil {
				text := buf[len(l.Prefix):]
				if ended {
					text = text[:len(text)-1]
				}
				l.Tap(text)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// Done is closed when Run has returned.
func (l *LinePrefixer) Done() <-chan struct{} { return l.done }

// Close stops Run even if a writer still holds the pipe open (a detached
// grandchild, say).
func (l *LinePrefixer) Close() { _ = l.r.Close() }
