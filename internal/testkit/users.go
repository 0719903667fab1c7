package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Nobody is the uid and gid of the unprivileged user tests run things as.
const Nobody = 65534

// NeedRoot skips the test unless it runs as root; why completes "needs
// root" in the skip message ("to run workers as nobody").
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root " + why)
	}
}

// PublicDir returns a new directory that every user may read and search,
// removed when the test ends. (t.TempDir's are in a directory only the
// test's user may enter.)
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "paddock-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// PublicCopy copies the running test binary into dir, under its own name,
// executable by every user, and returns its path: the binary go test
// builds is in a directory only its owner may enter, so a test that runs
// it as another user (AsUser) runs this copy, from a PublicDir.
func PublicCopy(t testing.TB, dir string) string {
	t.Helper()
	return CopyBinary(t, filepath.Join(dir, filepath.Base(os.Args[0])), 0o755)
}

// CopyBinary copies the running test binary to path with mode and returns
// path.
func CopyBinary(t testing.TB, path string, mode os.FileMode) string {
	t.Helper()
	return CopyFile(t, os.Args[0], path, mode)
}

// CopyFile copies the file from to path to, with mode (whatever the
// umask), and returns to.
//
// cp writes the copy, not this process: a descriptor open for writing in
// a test process is inherited by every child another test forks until
// that child execs, and executing the copy meanwhile fails with "text
// file busy" (ETXTBSY, go.dev/issue/22315), which the tests that run a
// copied binary saw under load. cp's descriptor is closed when cp exits.
func CopyFile(t testing.TB, from, to string, mode os.FileMode) string {
	t.Helper()
	if out, err := exec.Command("cp", "--", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v\n%s", from, to, err, out)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
	return to
}

// AsUser makes cmd run as uid, with gid the same number, and returns it.
func AsUser(cmd *exec.Cmd, uid uint32) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: uid}
	return cmd
}
