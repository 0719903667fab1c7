package procs

import (
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestLinePrefixer(t *testing.T) {
	var out testkit.Buffer
	lp, w, err := NewOutputPipe("web/3 | ", &out)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { lp.Run(); close(done) }()
	long := strings.Repeat("x", maxLine+10)
	for _, s := range []string{"one\n", "tw", "o\n", "\n", long + "\n", "last, no newline"} {
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	<-done
	want := "web/3 | one\nweb/3 | two\nweb/3 | \n" +
		"web/3 | " + long[:maxLine] + "\nweb/3 | " + long[maxLine:] + "\n" +
		"web/3 | last, no newline\n"
	if got := out.String(); got != want {
		t.Errorf("got %d bytes:\n%.300q\nwant %d bytes:\n%.300q", len(got), got, len(want), want)
	}
}

func TestLinePrefixerCloseUnblocks(t *testing.T) {
	lp, w, err := NewOutputPipe("x | ", &testkit.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // a writer that never closes, like a detached grandchild
	go lp.Run()
	lp.Close()
	select {
	case <-lp.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not stop Run")
	}
}

// TestLinePrefixerExact: with Exact, what the worker wrote is copied
// unchanged, one Write per line, and Tap still gets each line without its
// newline.
func TestLinePrefixerExact(t *testing.T) {
	var out testkit.Buffer
	lp, w, err := NewOutputPipe("", &out)
	if err != nil {
		t.Fatal(err)
	}
	lp.Exact = true
	var tapped []string
	lp.Tap = func(line []byte) { tapped = append(tapped, string(line)) }
	done := make(chan struct{})
	go func() { lp.Run(); close(done) }()
	long := strings.Repeat("x", maxLine+10)
	var all strings.Builder
	for _, s := range []string{"one\n", "tw", "o\n", "\n", long + "\n", "last, no newline"} {
		all.WriteString(s)
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	<-done
	if got := out.String(); got != all.String() {
		t.Errorf("got %d bytes:\n%.300q\nwant %d bytes:\n%.300q", len(got), got, all.Len(), all.String())
	}
	want := []string{"one", "two", "", long[:maxLine], long[maxLine:], "last, no newline"}
	if strings.Join(tapped, "|") != strings.Join(want, "|") {
		t.Errorf("tapped %.300q, want %.300q", tapped, want)
	}
}
