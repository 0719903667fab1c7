package logfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file reads the files back: the lines `paddock logs` shows once
// the in-memory ring has rolled past them.

// MaxTailBytes bounds the text Tail returns per file, whatever n says;
// the oldest lines beyond are left out.
const MaxTailBytes = 64 << 20

// maxLineBytes is the longest line read back (a 64 KiB line escaped as
// JSON fits); a file is read no further than a longer one.
const maxLineBytes = 1 << 20

// backupTimeFormat is the time lumberjack writes into the name of a
// rotated file: NAME-2006-01-02T15-04-05.000.EXT, then .gz when
// compressed.
const backupTimeFormat = "2006-01-02T15-04-05.000"

const syscallNonblock = syscall.O_NONBLOCK

var errNotRegular = errors.New("not a regular file")

// source is a file to read back and the stream its text lines are of.
type source struct {
	path   string
	stream string
}

// snapshot is a file as its writer saw it at a marker: the current file,
// read up to limit, then the rotated ones, newest first, all open.
type snapshot struct {
	files []*os.File
	limit int64
}

func (sn snapshot) close() {
	for _, f := range sn.files {
		f.Close()
	}
}

// Tail returns the last n lines of app (every app when "") and worker
// (every worker when 0) found in the files the app writes to, rotated
// ones included (gzip ones too), oldest first: every line written before
// the call, and none written after. atMarker (when not nil) runs at the
// moment that divides them, while no line can be written (see Write). It
// waits until ctx is done for each file's writer to reach that moment
// (a write blocked holds it up). Lines of text files are given without
// time; with several files, lines are put in order by their time, so
// that text files are given one after the other. It returns no line and
// no error when app writes no file.
func (s *Set) Tail(ctx context.Context, app string, worker, n int, atMarker func()) ([]Line, error) {
	sources, replies, err := s.mark(app, atMarker)
	if err != nil || len(sources) == 0 {
		return nil, err
	}
	snaps := make([]snapshot, len(sources))
	defer func() {
		for _, sn := range snaps {
			sn.close()
		}
	}()
	for i, r := range replies {
		select {
		case snaps[i] = <-r:
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %s: its writer is blocked in a write: %w", sources[i].path, ctx.Err())
		}
	}
	match := func(l Line) bool { return (app == "" || l.App == app) && (worker == 0 || l.Worker == worker) }
	var all []Line
	for i, src := range sources {
		all = append(all, tailFiles(snaps[i], src.stream, n, match)...)
	}
	if len(sources) > 1 {
		sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all, nil
}

// mark places a marker in the queue of every file app writes to, calling
// atMarker while every one of them is locked, and returns the files with
// the channels their snapshots come on.
func (s *Set) mark(app string, atMarker func()) ([]source, []chan snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	streams := map[string]string{} // path -> stream of its text lines
	note := func(path, stream string) {
		if prev, ok := streams[path]; ok && prev != stream {
			stream = ""
		}
		streams[path] = stream
	}
	for name, a := range s.apps {
		if (app != "" && name != app) || a.Stdout == "" {
			continue
		}
		if a.Stdout == a.Stderr {
			note(a.Stdout, "")
			continue
		}
		note(a.Stdout, "stdout")
		note(a.Stderr, "stderr")
	}
	var sources []source
	for p, stream := range streams {
		if s.writers[p] != nil {
			sources = append(sources, source{p, stream})
		}
	}
	sort.Slice(sources, func(i, j int) bool { return sources[i].path < sources[j].path })
	replies := make([]chan snapshot, len(sources))
	for i, src := range sources {
		w := s.writers[src.path]
		w.mu.Lock()
		defer w.mu.Unlock()
		r := make(chan snapshot, 1)
		replies[i] = r
		w.queue = append(w.queue, item{ctl: func(w *writer) { r <- w.snapshot() }})
		w.poke()
	}
	if atMarker != nil {
		atMarker()
	}
	return sources, replies, nil
}

// snapshot opens the file and its rotated ones, as they are between two
// writes.
func (w *writer) snapshot() snapshot {
	var sn snapshot
	sn.limit = -1 // no current file: the first is a rotated one, read whole
	if f, size, err := openRegular(w.path); err == nil {
		sn.files, sn.limit = append(sn.files, f), size
	}
	for _, p := range backups(w.path) {
		if f, _, err := openRegular(p); err == nil {
			sn.files = append(sn.files, f)
		}
	}
	return sn
}

// backups returns the rotated files of path, newest first: lumberjack's
// NAME-TIME.EXT and NAME-TIME.EXT.gz. A file being compressed is there
// under both names until the gzip one is complete: the plain one is
// taken then.
func backups(path string) []string {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil
	}
	type backup struct {
		t    time.Time
		name string
	}
	byTime := map[string]backup{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		rest := strings.TrimPrefix(name, prefix)
		gz := strings.HasSuffix(rest, ext+".gz")
		stamp, ok := strings.CutSuffix(strings.TrimSuffix(rest, ".gz"), ext)
		if !ok || (!gz && !strings.HasSuffix(rest, ext)) {
			continue
		}
		t, err := time.Parse(backupTimeFormat, stamp)
		if err != nil {
			continue
		}
		if prev, seen := byTime[stamp]; seen && !strings.HasSuffix(prev.name, ".gz") {
			continue // the plain one, complete, while its gzip is written
		}
		byTime[stamp] = backup{t, filepath.Join(dir, name)}
	}
	list := make([]backup, 0, len(byTime))
	for _, b := range byTime {
		list = append(list, b)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].t.After(list[j].t) })
	out := make([]string, len(list))
	for i, b := range list {
		out[i] = b.name
	}
	return out
}

// tailFiles returns the last n matching lines of sn's files, oldest
// first, reading from the newest file back until it has n of them.
func tailFiles(sn snapshot, stream string, n int, match func(Line) bool) []Line {
	var out []Line
	size := 0
	for i, f := range sn.files {
		need := n - len(out)
		if need <= 0 || size >= MaxTailBytes {
			break
		}
		var r io.Reader = f
		if i == 0 && sn.limit >= 0 {
			r = io.LimitReader(f, sn.limit)
		}
		if strings.HasSuffix(f.Name(), ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				continue
			}
			r = zr
		}
		lines := lastLines(r, stream, need, MaxTailBytes-size, match)
		for _, l := range lines {
			size += len(l.Text)
		}
		out = append(lines, out...)
	}
	return out
}

// lastLines returns the last n lines of r that match, oldest first,
// within maxBytes of text.
func lastLines(r io.Reader, stream string, n, maxBytes int, match func(Line) bool) []Line {
	var q []Line
	head, size := 0, 0 // q[head:] are kept
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	for sc.Scan() {
		l, ok := ParseLine(sc.Bytes(), stream)
		if !ok || !match(l) {
			continue
		}
		q = append(q, l)
		size += len(l.Text)
		for len(q)-head > n || (size > maxBytes && len(q)-head > 1) {
			size -= len(q[head].Text)
			q[head] = Line{}
			head++
		}
		if head > 1024 && head > len(q)/2 {
			q, head = append(q[:0], q[head:]...), 0
		}
	}
	return q[head:]
}

// ParseLine reads one line of a log file (without its newline), of
// either format; stream is the stream of a text line (the file does not
// say). It reports false for a line paddock did not write.
func ParseLine(b []byte, stream string) (Line, bool) {
	if len(b) > 0 && b[0] == '{' {
		var j jsonLine
		if json.Unmarshal(b, &j) == nil && j.App != "" && j.Worker > 0 {
			return Line{Time: j.Time, App: j.App, Worker: j.Worker, PID: j.PID, Stream: j.Stream, Text: j.Line}, true
		}
	}
	head, text, ok := bytes.Cut(b, []byte(" | "))
	if !ok {
		return Line{}, false
	}
	i := bytes.LastIndexByte(head, '/')
	if i <= 0 {
		return Line{}, false
	}
	id, err := strconv.Atoi(string(head[i+1:]))
	if err != nil || id < 1 {
		return Line{}, false
	}
	return Line{App: string(head[:i]), Worker: id, Stream: stream, Text: string(text)}, true
}
