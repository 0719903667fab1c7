package nodeipc

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestHandlesClaimDescriptorsInOrder: descriptors wait for the NODE_HANDLE
// lines that claim them in the order they arrived. The first handle line,
// completed by a read that also brings the second line's descriptor, gets
// the first descriptor, the second line the second one.
func TestHandlesClaimDescriptorsInOrder(t *testing.T) {
	conn, peer, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var pipes [2]*os.File
	var inodes [2]uint64
	for i := range pipes {
		pipes[i] = testkit.Pipe(t)
		var st unix.Stat_t
		if err := unix.Fstat(int(pipes[i].Fd()), &st); err != nil {
			t.Fatal(err)
		}
		inodes[i] = st.Ino
	}
	got := make(chan []string, 1)
	go func() {
		var claimed []string
		conn.ReadLines(func(l Line) error {
			if l.File == nil {
				claimed = append(claimed, "no descriptor")
				return nil
			}
			defer l.File.Close()
			var st unix.Stat_t
			unix.Fstat(int(l.File.Fd()), &st)
			which := "another descriptor"
			for i, ino := range inodes {
				if st.Ino == ino {
					which = fmt.Sprintf("descriptor %d", i+1)
				}
			}
			claimed = append(claimed, which)
			return nil
		})
		conn.Close()
		got <- claimed
	}()
	handle := `{"cmd":"NODE_HANDLE","msg":{"cmd":"NODE_CLUSTER","act":"newconn"}}` + "\n"
	for _, w := range []struct {
		data string
		fd   *os.File
	}{
		{handle[:10], pipes[0]},
		{handle[10:] + handle[:10], pipes[1]}, // completes line 1, starts line 2
		{handle[10:], nil},
	} {
		var oob []byte
		if w.fd != nil {
			oob = unix.UnixRights(int(w.fd.Fd()))
		}
		if _, err := unix.SendmsgN(int(peer.Fd()), []byte(w.data), oob, nil, unix.MSG_NOSIGNAL); err != nil {
			t.Fatal(err)
		}
		// One read per write: wait until the reader took it.
		deadline := time.Now().Add(30 * time.Second)
		for {
			n := 0
			conn.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the reader does not read")
			}
			time.Sleep(time.Millisecond)
		}
	}
	peer.Close()
	select {
	case claimed := <-got:
		if s := strings.Join(claimed, ", "); s != "descriptor 1, descriptor 2" {
			t.Errorf("the handle lines got %s, want descriptor 1, descriptor 2", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ReadLines did not return at end of file")
	}
}
