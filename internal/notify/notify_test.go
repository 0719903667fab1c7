package notify

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if state := os.Getenv("NOTIFY_TEST_SEND"); state != "" {
		if _, err := Send(state); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if os.Getenv("NOTIFY_TEST_HOLD") != "" {
			_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes it
		}
		os.Exit(0)
	}
	if os.Getenv("NOTIFY_TEST_BARRIER") != "" {
		sendBarrier()
		os.Exit(0)
	}
	if pid := os.Getenv("NOTIFY_TEST_CLAIM"); pid != "" {
		sendClaiming(pid)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestParse(t *testing.T) {
	got := Parse([]byte("READY=1\nSTATUS=serving 3 clients\nnonsense\n=x\nMAINPID=42"))
	want := map[string]string{"READY": "1", "STATUS": "serving 3 clients", "MAINPID": "42"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Parse = %v, want %v", got, want)
	}
}

// TestCredentials: a message sent by a child process arrives with the
// child's pid, checked by the kernel.
func TestCredentials(t *testing.T) {
	s, err := Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket file: %v %v", fi, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Message, 4)
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx, out) })
	defer func() {
		cancel()
		wg.Wait()
		s.Close()
		if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
	}()

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.Path(), "NOTIFY_TEST_SEND=READY=1\nSTATUS=up")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sender: %v\n%s", err, out)
	}
	select {
	case m := <-out:
		if m.PID != cmd.Process.Pid {
			t.Errorf("message from pid %d, want the sender %d", m.PID, cmd.Process.Pid)
		}
		if !m.Ready() || m.Fields["STATUS"] != "up" {
			t.Errorf("fields %v", m.Fields)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no message")
	}
}

func TestSendWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Send("READY=1"); sent || err != nil {
		t.Errorf("Send = %v, %v; want false, nil", sent, err)
	}
}
