package supervisor

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/manifest"
)

// baseDescriptors is what paddock holds whatever the manifests say: its
// standard streams, the poller, the control, notify and metrics sockets,
// the manifest watcher, the watchdog's pipe, with room to spare.
const baseDescriptors = 64

// DescriptorsNeeded estimates how many descriptors paddock holds to run
// set in a steady state: per worker its pidfd, the pipes its stdout and
// stderr are copied from, its IPC channel, its own SO_REUSEPORT sockets,
// its health socket and the connection its HTTP probes keep open; per
// listening address the socket (and the dispatcher's copy under rr and
// sticky); plus
// baseDescriptors. Connections paddock hands out under rr and sticky are
// held only until a worker takes them and are not counted.
func DescriptorsNeeded(set *manifest.Set) int {
	n := baseDescriptors
	for _, a := range set.Apps {
		perWorker := 3 // pidfd, stdout and stderr pipes
		if a.HasChannel() {
			perWorker++
		}
		perSocket := 1
		switch a.SchedulingPolicy {
		case "reuseport":
			perWorker += len(a.Listen)
		case "rr", "sticky":
			if a.HasChannel() {
				perSocket++
			}
		}
		if h := a.HealthCheck; h != nil {
			if h.HTTP != nil {
				perWorker++ // the probe's connection, kept open
			}
			if h.Port().From == manifest.PortWorker {
				perWorker++ // paddock's copy of the worker's health socket
			}
		}
		n += a.Instances*perWorker + len(a.Listen)*perSocket
	}
	return n
}

// OpenFilesLimit returns this process's limit of open descriptors (the
// soft RLIMIT_NOFILE, which Go's runtime raises to the hard limit at
// start; workers get the limit paddock was started with).
func OpenFilesLimit() (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("open files limit: %w", err)
	}
	return l.Cur, nil
}

// DescriptorWarning returns why set may not fit in the open files limit,
// or "" when it fits (or the limit cannot be read).
func DescriptorWarning(set *manifest.Set) string {
	limit, err := OpenFilesLimit()
	if err != nil {
		return ""
	}
	need := DescriptorsNeeded(set)
	if uint64(need) <= limit {
		return ""
	}
	return fmt.Sprintf("%s need about %d open descriptors in paddock, but its open files limit is %d: "+
		"some workers will fail to start (too many open files); raise the hard limit (ulimit -Hn, systemd's LimitNOFILE=)",
		plural.Count(set.Workers(), "worker"), need, limit)
}

// startErrorHint adds what to do to a start error caused by running out
// of descriptors.
func startErrorHint(err error) string {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
		return ""
	}
	limit, _ := OpenFilesLimit()
	if errors.Is(err, syscall.ENFILE) {
		return "the system's open files table is full (fs.file-max)"
	}
	return fmt.Sprintf("paddock has run out of descriptors (open files limit %d): raise the hard limit (ulimit -Hn, systemd's LimitNOFILE=)", limit)
}
