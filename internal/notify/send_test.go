package notify

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// TestReady: only READY=1 says ready, as sd_notify(3) defines it.
func TestReady(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"READY=1", true},
		{"STATUS=up\nREADY=1", true},
		{"READY=0", false},
		{"READY=yes", false},
		{"READY=", false},
		{"STATUS=READY=1", false},
		{"RELOADING=1", false},
	} {
		if got := (Message{Fields: Parse([]byte(tc.msg))}).Ready(); got != tc.want {
			t.Errorf("%q: Ready() = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

// TestSendAbstractSocket: Send reaches a socket in the abstract namespace,
// written "@name" in $NOTIFY_SOCKET as systemd does.
func TestSendAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@paddock-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if sent, err := Send("READY=1"); !sent || err != nil {
		t.Fatalf("Send = %v, %v; want true, nil", sent, err)
	}
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("read %q, %v; want READY=1", buf[:n], err)
	}
}
