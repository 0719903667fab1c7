package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/paddock-sh/paddock/internal/lease"
	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped by a FileError for a manifest path that is not a
// regular file once links are followed: a FIFO, a device, a socket.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by a FileError for a manifest file larger than the
// limit (8 MiB); no more than the limit is read of it.
var ErrTooLarge = errors.New("file too large")

// ErrOpenForWriting is wrapped by a FileError for a manifest file that some
// process has open for writing: its content may be half-written, so it is
// not read.
var ErrOpenForWriting = lease.ErrWriting

// FileError reports a manifest file that is not read: not a regular file,
// larger than the limit, or open for writing. Unlike a PathError (a path
// that cannot be read: missing, not permitted), it says that what is at the
// path is no manifest, or not a finished one. Its text names the file:
// "deploy/x.yaml: is a FIFO, not a regular file",
// "deploy/x.yaml: is larger than 8388608 bytes",
// "a writer still has deploy/x.yaml open".
type FileError struct {
	Path string
	Err  error // wraps ErrNotRegular, ErrTooLarge or ErrOpenForWriting
}

func (e *FileError) Error() string {
	if errors.Is(e.Err, ErrOpenForWriting) {
		return fmt.Sprintf("a writer still has %s open", e.Path)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// IsOpenForWriting reports whether err, as Load returns it, includes a file
// that a process had open for writing.
func IsOpenForWriting(err error) bool {
	for _, e := range Errors(err) {
		if errors.Is(e, ErrOpenForWriting) {
			return true
		}
	}
	return false
}

// FileState identifies the content of one manifest file as Load read it.
type FileState struct {
	// Path is the file as named in App.Source.File.
	Path    string
	Size    int64
	ModTime time.Time
	// Sum is the SHA-256 of the content.
	Sum [sha256.Size]byte
}

// Same reports whether s and o describe the same content of the same file,
// written at the same time.
func (s FileState) Same(o FileState) bool {
	return s.Path == o.Path && s.Size == o.Size && s.ModTime.Equal(o.ModTime) && s.Sum == o.Sum
}

// notRegular returns the FileError for path whose mode is not a regular
// file's, or nil when it is one.
func notRegular(path string, mode fs.FileMode) error {
	var kind string
	switch {
	case mode.IsRegular():
		return nil
	case mode&fs.ModeNamedPipe != 0:
		kind = "a FIFO"
	case mode&fs.ModeCharDevice != 0:
		kind = "a character device"
	case mode&fs.ModeDevice != 0:
		kind = "a block device"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode.IsDir():
		kind = "a directory"
	default:
		kind = "of type " + mode.Type().String()
	}
	return &FileError{Path: path, Err: fmt.Errorf("is %s, %w", kind, ErrNotRegular)}
}

// readFile reads the manifest file at path, whatever is at that path,
// without blocking on it for its kind and without reading more than
// maxDecodeBytes+1 bytes of it.
//
// Links are followed; anything but a regular file then is a FileError
// (ErrNotRegular), and is not even opened when a first stat tells (opening
// a device can have effects of its own). The file is opened read-only,
// non-blocking (a FIFO put in its place meanwhile opens at once), and
// checked again on the descriptor. It is read under a read lease (see
// package lease): a file that a process has open for writing is a FileError
// (ErrOpenForWriting), and nobody can open it for writing while it is read,
// so what is read is one whole version of it. Where the kernel refuses the
// lease for another reason (not the owner, a filesystem without leases) the
// file is read all the same. A file larger than the limit is a FileError
// (ErrTooLarge), read no further. Other problems are *PathError.
func readFile(path string) ([]byte, FileState, error) {
	state := FileState{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, state, &PathError{Path: path, Err: err}
	}
	if err := notRegular(path, fi.Mode()); err != nil {
		return nil, state, err
	}
	fd, err := lease.Open(path)
	if err != nil {
		return nil, state, &PathError{Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, state, &PathError{Path: path, Err: &os.PathError{Op: "fstat", Path: path, Err: err}}
	}
	if err := notRegular(path, fileMode(st.Mode)); err != nil {
		return nil, state, err
	}
	switch err := lease.Take(fd); {
	case err == nil:
		defer lease.Release(fd)
	case errors.Is(err, lease.ErrWriting):
		return nil, state, &FileError{Path: path, Err: ErrOpenForWriting}
	}
	tooLarge := &FileError{Path: path, Err: fmt.Errorf("is larger than %d bytes: %w", maxDecodeBytes, ErrTooLarge)}
	if st.Size > maxDecodeBytes {
		return nil, state, tooLarge
	}
	var buf bytes.Buffer
	buf.Grow(int(st.Size) + 1)
	if _, err := buf.ReadFrom(io.LimitReader(f, maxDecodeBytes+1)); err != nil {
		return nil, state, &PathError{Path: path, Err: err}
	}
	if buf.Len() > maxDecodeBytes {
		return nil, state, tooLarge
	}
	data := buf.Bytes()
	state.Size = int64(len(data))
	state.ModTime = time.Unix(st.Mtim.Unix())
	state.Sum = sha256.Sum256(data)
	return data, state, nil
}

// fileMode turns the type bits of a stat mode into an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}
