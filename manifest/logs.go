package manifest

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Defaults of `logs:`.
const (
	DefaultLogMaxSize  = 50 << 20 // 50Mi
	DefaultLogMaxFiles = 5
	DefaultLogStreams  = StreamsMerged
	// LogSizeStep is the unit of logs.maxSize: the rotation library
	// (lumberjack) counts a file's size limit in whole MiB.
	LogSizeStep = 1 << 20
)

// Values of logs.streams: whether a worker's stdout and stderr go to one
// file or two.
const (
	StreamsMerged   = "merged"   // both in logs.file
	StreamsSeparate = "separate" // stdout in logs.file, stderr beside it (StderrPath)
)

// LogStreams lists the accepted values of Logs.Streams.
var LogStreams = []string{StreamsMerged, StreamsSeparate}

// Logs is `logs:`, where the workers' output is written on disk besides
// paddock's own stdout and stderr, with rotation. It is an app's own, or
// the top-level `logs:` of one file of the set, which every app without
// its own takes. Changing it does not replace the workers: the running
// ones write where it says from the moment it is applied (it is not part
// of the generation).
type Logs struct {
	// File is the log file's absolute path (a relative path in the
	// manifest is resolved against the manifest file's directory). Its
	// directory is created when missing; the file is created with mode
	// 0600. Several apps may name the same file (with the same settings):
	// their lines are written to it in the order they come.
	File string `yaml:"file"`
	// MaxSize is the size, in bytes, past which the file is rotated: it is
	// renamed with the time of the rotation (web-2026-01-02T15-04-05.000.log)
	// and a new one is begun. A whole number of MiB (LogSizeStep), at
	// least 1Mi. Default 50Mi.
	MaxSize int64 `yaml:"maxSize"`
	// MaxFiles is how many rotated files are kept (the oldest beyond are
	// removed); 0 keeps them all. Default 5.
	MaxFiles int `yaml:"maxFiles"`
	// Compress gzips the rotated files (name.log.gz). Default false.
	Compress bool `yaml:"compress"`
	// Streams is merged (stdout and stderr in File) or separate (stdout
	// in File, stderr in StderrPath(File)). Default merged.
	Streams string `yaml:"streams"`

	// Off is `logs: false`: the app writes no file, even when the set
	// has a top-level `logs:`.
	Off bool `yaml:"-"`
	// Source is where the `logs:` value is; Field its path in errors
	// ("apps.web.logs", or "logs" for the top-level one); Pos maps a key
	// ("file", "maxSize") to where its value is.
	Source Pos            `yaml:"-" json:"-"`
	Field  string         `yaml:"-" json:"-"`
	Pos    map[string]Pos `yaml:"-" json:"-"`
}

// Paths returns the files l writes: File for stdout, and for stderr File
// again (merged) or StderrPath(File) (separate).
func (l *Logs) Paths() (stdout, stderr string) {
	if l.Streams == StreamsSeparate {
		return l.File, StderrPath(l.File)
	}
	return l.File, l.File
}

// Equal reports whether l and o write the same files the same way (nil
// is no file), wherever they were declared.
func (l *Logs) Equal(o *Logs) bool {
	if l == nil || o == nil {
		return l == o
	}
	return l.File == o.File && l.Streams == o.Streams && l.sameRotation(o)
}

// sameRotation reports whether l and o rotate their files alike (maxSize,
// maxFiles, compress), so that they may share a file.
func (l *Logs) sameRotation(o *Logs) bool {
	return l.MaxSize == o.MaxSize && l.MaxFiles == o.MaxFiles && l.Compress == o.Compress
}

// StderrPath returns where the stderr of a `streams: separate` app goes:
// path with ".stderr" before its extension, /var/log/web.log →
// /var/log/web.stderr.log, /var/log/web → /var/log/web.stderr.
func StderrPath(path string) string {
	ext := filepath.Ext(filepath.Base(path))
	return strings.TrimSuffix(path, ext) + ".stderr" + ext
}

// posOf returns the position of key of l, falling back to l's own.
func (l *Logs) posOf(key string) Pos {
	if p, ok := l.Pos[key]; ok {
		return p
	}
	return l.Source
}

// logsKeys says which keys `logs:` has, for errors.
const logsKeys = "logs has file, maxSize, maxFiles, compress and streams"

// decodeLogs decodes a `logs:` value at n for field (the app's
// "apps.NAME.logs", or "logs"): `false`, or a mapping with `file:`. It
// returns nil when n is no such value (an error was recorded).
func (d *decoder) decodeLogs(n *yaml.Node, field string) *Logs {
	l := &Logs{MaxSize: DefaultLogMaxSize, MaxFiles: DefaultLogMaxFiles, Streams: DefaultLogStreams,
		Source: d.pos(n), Field: field, Pos: map[string]Pos{}}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		if n.Value == "false" {
			l.Off = true
			return l
		}
		d.errorf(n, field, "must be a mapping with file: (logs: {file: web.log}), or false for no file, got %s", kindName(n))
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, field, "must be a mapping (%s), or false for no file, got %s", logsKeys, kindName(n))
		return nil
	}
	ok := true
	for _, p := range d.pairs(n, field) {
		if !d.spend(p.key) {
			return nil
		}
		k := p.key.Value
		v := deref(p.val)
		sub := join(field, k)
		decode, known := logsFields[k]
		if !known {
			d.errorf(p.key, sub, "unknown field (%s)", logsKeys)
			ok = false
			continue
		}
		l.Pos[k] = d.pos(v)
		if isNull(v) {
			continue
		}
		f := &fieldDecoder{d: d, app: &App{Pos: map[string]Pos{}}, field: sub, key: k}
		ok = decode(f, v, l) && ok
	}
	if l.File == "" {
		if _, written := l.Pos["file"]; !written && ok {
			d.errorf(n, join(field, "file"), "required: the path of the log file")
		}
		return nil
	}
	if !ok {
		return nil
	}
	return l
}

// logsFields decodes each key of `logs:`; false means the value was
// refused (an error was recorded).
var logsFields = map[string]func(f *fieldDecoder, n *yaml.Node, l *Logs) bool{
	"file": func(f *fieldDecoder, n *yaml.Node, l *Logs) bool {
		s, ok := f.str(n)
		if !ok {
			return false
		}
		if base := filepath.Base(filepath.Clean(s)); s == "" || strings.HasSuffix(s, "/") || base == ".." || base == "." {
			f.errorf(n, "must be the path of a file, got %q", s)
			return false
		}
		if !filepath.IsAbs(s) {
			s = filepath.Join(manifestDirOf(f.d.file), s)
		}
		l.File = filepath.Clean(s)
		return true
	},
	"maxSize": func(f *fieldDecoder, n *yaml.Node, l *Logs) bool {
		if v, ok := ParseSize(n.Value); ok && v == 0 && n.Kind == yaml.ScalarNode {
			f.errorf(n, "must be at least 1Mi, got %s", n.Value)
			return false
		}
		v, ok := f.size(n)
		if !ok {
			return false
		}
		if v%LogSizeStep != 0 {
			f.errorf(n, "must be a whole number of Mi (files rotate in steps of 1Mi), got %s", n.Value)
			return false
		}
		l.MaxSize = v
		return true
	},
	"maxFiles": func(f *fieldDecoder, n *yaml.Node, l *Logs) bool {
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || i < 0 || i > MaxLogFiles {
			f.errorf(n, "must be an integer from 0 (keep every rotated file) to %d, got %s", MaxLogFiles, kindName(n))
			return false
		}
		l.MaxFiles = i
		return true
	},
	"compress": func(f *fieldDecoder, n *yaml.Node, l *Logs) bool {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			f.errorf(n, "must be true or false, got %s", kindName(n))
			return false
		}
		return n.Decode(&l.Compress) == nil
	},
	"streams": func(f *fieldDecoder, n *yaml.Node, l *Logs) bool {
		s := f.oneOf(n, LogStreams)
		if s == "" {
			return false
		}
		l.Streams = s
		return true
	},
}

// MaxLogFiles bounds logs.maxFiles, to catch typos.
const MaxLogFiles = 10000

// decodeAppLogs is appFields' decoder of an app's `logs:`.
func decodeAppLogs(f *fieldDecoder, n *yaml.Node) {
	if l := f.d.decodeLogs(n, f.field); l != nil {
		f.app.Logs = l
	}
}

// topLevelLogs decodes a top-level `logs:` value v: one per file, in any
// of its documents; null declares none.
func (d *decoder) topLevelLogs(v *yaml.Node) {
	v = deref(v)
	if isNull(v) {
		return
	}
	l := d.decodeLogs(v, "logs")
	if l == nil {
		return
	}
	if l.Off {
		d.errorf(v, "logs", "false is for an app that writes no file: the top-level logs: is a mapping with file:")
		return
	}
	if d.topLogs != nil {
		d.l.addErr(topLogsError(l, d.topLogs))
		return
	}
	d.topLogs = l
}

// applyLogs gives every app without a `logs:` of its own the top-level
// one (nil: none), and drops the `logs: false` of the others.
func applyLogs(apps []*App, top *Logs) {
	for _, a := range apps {
		switch {
		case a.Logs == nil && top != nil:
			a.Logs = top
		case a.Logs != nil && a.Logs.Off:
			a.Logs = nil
		}
	}
}

// validateLogs checks that apps writing to the same file rotate it alike:
// one file has one writer, with one maxSize, maxFiles and compress.
func validateLogs(l *errorList, apps []*App) {
	type use struct {
		app  string
		logs *Logs
	}
	first := map[string]use{}
	for _, a := range apps {
		if a.Logs == nil {
			continue
		}
		out, errPath := a.Logs.Paths()
		paths := []string{out}
		if errPath != out {
			paths = append(paths, errPath)
		}
		for _, p := range paths {
			u, seen := first[p]
			if !seen {
				first[p] = use{a.Name, a.Logs}
				continue
			}
			if u.logs == a.Logs || u.logs.sameRotation(a.Logs) {
				continue
			}
			l.add(a.Logs.posOf("file"), a.Logs.Field+".file",
				"%s is also the log file of app %s (%s at %s) with another maxSize, maxFiles or compress: one file rotates one way",
				p, u.app, u.logs.Field, u.logs.Source)
		}
	}
}

// topLogsError is the error of a second top-level `logs:` in a set.
func topLogsError(second, first *Logs) error {
	return &FieldError{Pos: second.Source, Field: "logs",
		Msg: fmt.Sprintf("a top-level logs: is already declared at %s: only one file of the set may have one", first.Source)}
}
