// Package sysctl reads and changes the kernel settings paddock depends on:
// today net.ipv4.tcp_migrate_req, which decides whether the connections
// queued on a retiring worker's SO_REUSEPORT socket move to the other
// workers or are reset.
//
// It is internal because changing a sysctl is a decision of the supervisor
// (its --sysctl flag), not of a library that shares sockets.
package sysctl

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// migrateReqPath is the file of net.ipv4.tcp_migrate_req (Linux 5.14 and
// later, per network namespace): when it is 1, the connections queued on
// an SO_REUSEPORT socket that stops listening move to the other sockets of
// its group instead of being reset.
const migrateReqPath = "/proc/sys/net/ipv4/tcp_migrate_req"

// Migration reports whether net.ipv4.tcp_migrate_req is on in the network
// namespace of the calling thread.
func Migration() (bool, error) {
	v, err := readMigrateReq()
	return v == "1", err
}

// EnableMigration turns net.ipv4.tcp_migrate_req on in the network
// namespace of the calling thread when it is off, so that the connections
// queued on a retiring worker's SO_REUSEPORT socket are handed to the other
// workers instead of being reset, and logs at info on logger the value it
// found, the value it wrote and why (a nil logger is slog.Default()). It
// writes nothing when the setting is already on. It reports whether
// migration is on.
func EnableMigration(logger *slog.Logger) (bool, error) {
	if logger == nil {
		logger = slog.Default()
	}
	old, err := readMigrateReq()
	if err != nil {
		return false, err
	}
	if old == "1" {
		return true, nil
	}
	if err := os.WriteFile(migrateReqPath, []byte("1"), 0o644); err != nil {
		return false, fmt.Errorf("write 1 to net.ipv4.tcp_migrate_req (was %s): %w", old, err)
	}
	logger.Info("changed a sysctl: connections queued on a retiring worker's SO_REUSEPORT socket now move to the other workers instead of being reset (--sysctl=false forbids this)",
		"sysctl", "net.ipv4.tcp_migrate_req", "old", old, "new", "1")
	return true, nil
}

// readMigrateReq returns the value of net.ipv4.tcp_migrate_req, trimmed.
func readMigrateReq() (string, error) {
	b, err := os.ReadFile(migrateReqPath)
	if err != nil {
		return "", fmt.Errorf("read net.ipv4.tcp_migrate_req (Linux 5.14 and later): %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
