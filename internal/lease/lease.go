// Package lease asks the kernel whether any process has a file open for
// writing, with a Linux file lease (fcntl F_SETLEASE): a read lease is
// refused with EAGAIN while the file is open for writing anywhere, by any
// process, this one included.
//
// A writer that truncates a file and fills it later (`cmd > m.yaml`,
// `curl -o`) leaves it empty or half-written in between, with no event to
// tell; the lease is how a reader tells that the content is not final yet.
// Leases need the file's owner or CAP_LEASE, and a filesystem that has them:
// where the kernel refuses one for another reason, nothing is known about
// writers (*UnavailableError).
package lease

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrWriting is returned while some process has the file open for writing.
var ErrWriting = errors.New("a process has the file open for writing")

// UnavailableError reports a lease refused for another reason than a
// writer: the caller is neither the file's owner nor holds CAP_LEASE
// (EACCES), or the filesystem or the kernel has no leases (EINVAL). Whether
// a writer has the file open is not known then.
type UnavailableError struct {
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("cannot tell whether a writer has the file open: file lease refused: %v", e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Take places a read lease on fd, which must be open read-only. It returns
// nil with the lease held, ErrWriting while the file is open for writing,
// or *UnavailableError.
//
// While the lease is held, a process that opens the file for writing or
// truncates it waits until Release (at most /proc/sys/fs/lease-break-time),
// so that what is read under the lease is one version of the file: release
// it as soon as the read it protects is done. The kernel tells the holder of
// such a wait with SIGIO, which the Go runtime ignores unless the program
// asked for it with os/signal.
func Take(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EAGAIN):
		return ErrWriting
	default:
		return &UnavailableError{Err: err}
	}
}

// Release gives up the lease Take placed on fd. Closing fd releases it too.
func Release(fd int) {
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
}

// Check reports whether a process has the file at path open for writing:
// ErrWriting when one has, nil when none has, *UnavailableError or the
// error of open when it cannot be told. A path that does not exist or is
// not a regular file once links are followed gives nil: nobody writes it in
// place (whoever reads it reports what it is). Check never blocks on the
// file's kind: it opens nothing but regular files, and those without
// waiting (O_NONBLOCK), and holds the lease only for the time of one fcntl.
func Check(path string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	fd, err := Open(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	if err := Take(fd); err != nil {
		return err
	}
	Release(fd)
	return nil
}

// Open opens path read-only for Take: close-on-exec, never blocking (a FIFO
// put in place of the file opens at once), never becoming the controlling
// terminal. Errors are *os.PathError.
func Open(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
