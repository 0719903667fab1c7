package statuspage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/internal/testkit"
)

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: ":8080", want: "127.0.0.1:8080"},
		{in: ":0", want: "127.0.0.1:0"},
		{in: "127.0.0.1:9000", want: "127.0.0.1:9000"},
		{in: "0.0.0.0:8080", want: "0.0.0.0:8080"},
		{in: "[::1]:8080", want: "[::1]:8080"},
		{in: "localhost:8080", want: "localhost:8080"},
		{in: "8080", err: "want HOST:PORT"},
		{in: "127.0.0.1", err: "want HOST:PORT"},
		{in: "127.0.0.1:", err: "missing port"},
		{in: "", err: "want HOST:PORT"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ListenAddr(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ListenAddr(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ListenAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// fakeStatus is a supervisor's status for the page, counting the reads.
type fakeStatus struct {
	reads atomic.Int64
	mu    sync.Mutex
	st    control.StatusResponse
}

func (f *fakeStatus) status(ctx context.Context) (control.StatusResponse, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(f.st) // a deep copy, as StatusFrom makes each time
	var st control.StatusResponse
	_ = json.Unmarshal(b, &st)
	return st, ctx.Err()
}

func ptr[T any](v T) *T { return &v }

func sampleStatus() control.StatusResponse {
	return control.StatusResponse{
		Supervisor: control.SupervisorInfo{PID: 1, Version: "test", Manifests: []string{"/m.yaml"}},
		Apps: []control.App{{Name: "web", Instances: 1, Running: 1, Ready: 1, CPUPercent: ptr(12.5), RSSBytes: ptr(int64(4096)),
			LastExit: &control.ExitInfo{Worker: 1, PID: 10, Code: 1, Lines: []string{"password=SECRET-LINE"}},
			Rollout:  &control.Rollout{Instances: 1, Stalled: "stuck", Lines: []string{"SECRET-LINE"}, LastExit: &control.ExitInfo{Lines: []string{"SECRET-LINE"}}}}},
		Workers: []control.Worker{{App: "web", ID: 2, PID: 20, State: "running", Ready: true, CPUPercent: ptr(12.5), RSSBytes: ptr(int64(4096))}},
	}
}

// testPage returns a page over f and hub, served by a test server on
// loopback, with its history read every interval by Run until the test
// ends.
func testPage(t *testing.T, f *fakeStatus, hub *control.Hub, interval, hold time.Duration) (*Page, *httptest.Server) {
	t.Helper()
	p := &Page{Status: f.status, Events: hub, Done: make(chan struct{}), Interval: interval, Hold: hold}
	srv := httptest.NewServer(ReadOnly(p.Handler()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return p, srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestReadOnly: whatever the path, only GET and HEAD get past ReadOnly.
func TestReadOnly(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	_, srv := testPage(t, f, control.NewHub(), time.Hour, time.Hour)
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"} {
		for _, path := range []string{"/", "/api/status", "/api/events", "/static/page.js", "/v1/stop", "/nowhere"} {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"instances":0}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, GET, HEAD", method, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	for _, method := range []string{"GET", "HEAD"} {
		req, _ := http.NewRequest(method, srv.URL+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /: %d, want 200", method, resp.StatusCode)
		}
	}
}

// TestHeadersAndHostGuard: every answer of the page carries its
// Content-Security-Policy; on loopback, a Host that is not this machine
// (DNS rebinding) is refused.
func TestHeadersAndHostGuard(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	_, srv := testPage(t, f, control.NewHub(), time.Hour, time.Hour)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"localhost:" + port, 200},
		{"LOCALHOST.", 200},
		{"app.localhost:" + port, 200},
		{"[::1]:" + port, 200},
		{"10.1.2.3", 200},
		{"attacker.example:" + port, http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io:" + port, http.StatusMisdirectedRequest},
	} {
		for _, path := range []string{"/", "/api/status", "/api/history", "/static/page.js"} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			req.Host = tc.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("Host %s, GET %s: %d, want %d", tc.host, path, resp.StatusCode, tc.want)
			}
			if resp.StatusCode != 200 && strings.Contains(string(body), "SECRET") {
				t.Errorf("Host %s, GET %s: the refusal shows data", tc.host, path)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
				t.Errorf("Host %s, GET %s: Content-Security-Policy %q", tc.host, path, csp)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: no X-Content-Type-Options: nosniff", path)
			}
		}
	}
	// Bound to another address, the operator exposed the page: any Host.
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "status.example.com"
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80}))
	if !hostAllowed(req) {
		t.Error("a page bound to 10.0.0.1 refused Host status.example.com")
	}
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv6loopback, Port: 80}))
	if hostAllowed(req) {
		t.Error("a page bound to ::1 answered Host status.example.com")
	}
}

// TestAssetsAreSelfContained: the page loads nothing from elsewhere and
// has no inline script or style that its Content-Security-Policy would
// block: every URL in its files is of its own origin.
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	inline := regexp.MustCompile(`(?i)<script>|<style|\sstyle=|\son[a-z]+=|javascript:|innerHTML|eval\(|new Function`)
	n := 0
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(b), `"http://www.w3.org/2000/svg"`, "") // a namespace, not a fetch
		if m := external.FindString(text); m != "" {
			t.Errorf("%s refers to %s: the page must load nothing from elsewhere", path, m)
		}
		if m := inline.FindString(text); m != "" {
			t.Errorf("%s has %q: inline code, or HTML built from strings", path, m)
		}
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("%d assets, %v", n, err)
	}
}

// TestHistoryIsBounded: a series keeps one window of readings, a series
// whose worker is gone is dropped once its last reading left the window,
// and the number of series is capped (apps always get theirs).
func TestHistoryIsBounded(t *testing.T) {
	h := newHistory(time.Minute, 10*time.Second) // 7 points a series
	h.maxSeries = 5
	t0 := time.Unix(1_000_000, 0)
	reading := func(i int, workers ...int) Sample {
		smp := Sample{T: t0.Add(time.Duration(i) * 10 * time.Second).UnixMilli(), Apps: map[string]Point{}, Workers: map[string]Point{}}
		smp.Apps["web"] = Point{T: smp.T, CPU: float64(i)}
		for _, id := range workers {
			smp.Workers[WorkerKey("web", id)] = Point{T: smp.T, CPU: float64(i)}
		}
		return smp
	}
	for i := range 100 {
		h.record(reading(i, 1, 2))
	}
	snap := h.snapshot(10 * time.Second)
	if pts := snap.Apps["web"]; len(pts) != 7 || pts[0].CPU != 93 || pts[6].CPU != 99 {
		t.Errorf("web's series: %v; want the 7 readings 93..99", pts)
	}
	// Worker 2 goes; 1 stays.
	for i := 100; i < 106; i++ {
		h.record(reading(i, 1))
	}
	if _, ok := h.snapshot(0).Workers["web/2"]; !ok {
		t.Error("web/2 dropped while its last reading is still in the window")
	}
	h.record(reading(107, 1))
	if _, ok := h.snapshot(0).Workers["web/2"]; ok {
		t.Error("web/2 kept after its last reading left the window")
	}
	// A crowd of workers: capped at maxSeries series in all.
	h.record(reading(108, 1, 3, 4, 5, 6, 7, 8, 9))
	if n, points := h.len(); n != 5 || points > 5*7 {
		t.Errorf("%d series, %d points; want 5 series (maxSeries), at most 35 points", n, points)
	}
}

// TestNothingReadWithoutViewers: the page reads no status while nobody
// looks; a request for its data starts the readings, which stop Hold after
// the last; a viewer of the stream keeps them going.
func TestNothingReadWithoutViewers(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	const interval = 5 * time.Millisecond
	p, srv := testPage(t, f, control.NewHub(), interval, 100*time.Millisecond)
	time.Sleep(40 * interval)
	if n := f.reads.Load(); n != 0 {
		t.Fatalf("%d reads with nobody looking, want 0", n)
	}
	get(t, srv.URL+"/api/history")
	testkit.WaitFor(t, "readings after a request", func() bool { return f.reads.Load() >= 3 })
	testkit.WaitFor(t, "the readings to stop after Hold", func() bool { return !p.active() })
	before := f.reads.Load()
	time.Sleep(40 * interval)
	// One reading may have been under way when Hold ended.
	if n := f.reads.Load(); n > before+1 {
		t.Fatalf("%d reads after Hold with nobody looking, want none", n-before)
	}
	if _, pts := p.hist.len(); pts == 0 {
		t.Error("the readings left no history")
	}

	stream := openStream(t, srv.URL, "")
	defer stream.close()
	stream.next(t, msgStatus)
	testkit.WaitFor(t, "readings while a viewer follows", func() bool { return f.reads.Load() >= before+10 })
	stream.next(t, msgSample)
}

// stream is a client of GET /api/events.
type stream struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func openStream(t *testing.T, base, host string) *stream {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/events", nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("GET /api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	return &stream{resp: resp, sc: sc}
}

func (s *stream) close() { s.resp.Body.Close() }

// read returns the next message's name and data.
func (s *stream) read(t *testing.T) (name, data string) {
	t.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && name != "":
			return name, data
		}
	}
	t.Fatalf("the stream ended: %v", s.sc.Err())
	return "", ""
}

// next skips to the next message called name and returns its data.
func (s *stream) next(t *testing.T, name string) string {
	t.Helper()
	for {
		if n, data := s.read(t); n == name {
			return data
		}
	}
}

// TestStreamEventsThenStatus: an event reaches the viewer (without output
// lines), and the status is sent again after it; the status the page gets
// has no output lines either.
func TestStreamEventsThenStatus(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	hub := control.NewHub()
	_, srv := testPage(t, f, hub, time.Hour, time.Hour)
	st := openStream(t, srv.URL, "")
	defer st.close()
	first := st.next(t, msgStatus)
	var msg statusMessage
	if err := json.Unmarshal([]byte(first), &msg); err != nil || len(msg.Status.Workers) != 1 || msg.Now == 0 {
		t.Fatalf("first status: %v %s", err, first)
	}
	f.mu.Lock()
	f.st.Workers[0].PID = 21 // the worker was replaced
	f.mu.Unlock()
	hub.Publish(supervisor.Event{Time: time.Now(), Type: supervisor.EventRolloutStalled, App: "web",
		Detail: `web/2 exited; its last line: "SECRET-LINE \"quoted\""; the old workers keep serving`,
		Stall:  &supervisor.StallInfo{Lines: []string{"SECRET-RUNNING"}, Exit: &supervisor.ExitInfo{Lines: []string{`SECRET-LINE "quoted"`}}}})
	if data := st.next(t, msgEvent); strings.Contains(data, "SECRET") || !strings.Contains(data, "its last line: "+strings.ReplaceAll(outputNotShown, `"`, `\"`)) {
		t.Fatalf("the rollout-stalled event shows output, or not where it was: %s", data)
	}
	hub.Publish(supervisor.Event{Time: time.Now(), Type: supervisor.EventExit, App: "web", Worker: 2, PID: 20, ExitCode: -1, Signal: "SIGKILL"})
	data := st.next(t, msgEvent)
	if !strings.Contains(data, `"type":"exit"`) || !strings.Contains(data, `"pid":20`) || strings.Contains(data, "SECRET") {
		t.Fatalf("the event: %s", data)
	}
	data = st.next(t, msgStatus)
	if !strings.Contains(data, `"pid":21`) {
		t.Errorf("the status after the event: %s; want the new pid", data)
	}
	if strings.Contains(first+data, "SECRET") {
		t.Errorf("the stream shows output lines:\n%s\n%s", first, data)
	}
	if _, _, body := get(t, srv.URL+"/api/status"); strings.Contains(body, "SECRET") || !strings.Contains(body, `"stalled":"stuck"`) {
		t.Errorf("GET /api/status shows output lines, or not the status:\n%s", body)
	}
}

// TestSlowViewerNeverBlocks: a browser that stops reading never holds up
// the supervisor's events: publishing goes on, the viewer's queues stay
// bounded, it learns how many events it lost, and its followers are freed
// when it goes.
func TestSlowViewerNeverBlocks(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	hub := control.NewHub()
	_, srv := testPage(t, f, hub, time.Hour, time.Hour)
	st := openStream(t, srv.URL, "")
	st.next(t, msgStatus)
	// Enough to fill the socket's buffers many times over while nobody
	// reads: 8× the follower's queue, 4 KiB each.
	published := make(chan struct{})
	go func() {
		defer close(published)
		detail := strings.Repeat("x", 4096)
		for range 8 * control.FollowerQueue {
			hub.Publish(supervisor.Event{Time: time.Now(), Type: "message", App: "web", Detail: detail})
		}
	}()
	select {
	case <-published:
	case <-time.After(testkit.Patience):
		t.Fatal("publishing blocked on a viewer that does not read")
	}
	if data := st.next(t, msgLost); !strings.Contains(data, `"lost":`) {
		t.Errorf("lost: %s", data)
	}
	st.close()
	testkit.WaitFor(t, "the viewer's follower to be freed", func() bool { return hub.Followers() == 0 })
}

// TestViewersAreBounded: past MaxViewers, a stream is refused (503) and
// the others go on.
func TestViewersAreBounded(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	hub := control.NewHub()
	_, srv := testPage(t, f, hub, time.Hour, time.Hour)
	var streams []*stream
	for range MaxViewers {
		s := openStream(t, srv.URL, "")
		s.next(t, msgStatus)
		streams = append(streams, s)
	}
	code, hdr, body := get(t, srv.URL+"/api/events")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, "viewers") {
		t.Errorf("viewer %d: %d %q; want 503 with Retry-After", MaxViewers+1, code, body)
	}
	if hub.Followers() != MaxViewers {
		t.Errorf("%d event followers for %d viewers", hub.Followers(), MaxViewers)
	}
	for _, s := range streams {
		s.close()
	}
	testkit.WaitFor(t, "the followers to be freed", func() bool { return hub.Followers() == 0 })
}

// TestStreamEndsWithSupervisor: the streams end when the supervisor
// stops.
func TestStreamEndsWithSupervisor(t *testing.T) {
	f := &fakeStatus{st: sampleStatus()}
	done := make(chan struct{})
	p := &Page{Status: f.status, Events: control.NewHub(), Done: done, Interval: time.Hour}
	srv := httptest.NewServer(ReadOnly(p.Handler()))
	defer srv.Close()
	st := openStream(t, srv.URL, "")
	st.next(t, msgStatus)
	close(done)
	for st.sc.Scan() {
	}
	if err := st.sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("the stream ended with %v", err)
	}
}

// TestNoStatusOlderThanAnEvent: a reading of the status that began before
// an event the viewer was sent is not sent after it (its points are), so
// the page never shows a worker the event said had exited as running; a
// later reading is sent.
func TestNoStatusOlderThanAnEvent(t *testing.T) {
	p := &Page{Status: (&fakeStatus{st: sampleStatus()}).status, Events: control.NewHub()}
	p.init()
	v, err := p.follow()
	if err != nil {
		t.Fatal(err)
	}
	defer v.leave()
	rec := httptest.NewRecorder()
	v.out = &sse{w: rec, rc: http.NewResponseController(rec)}
	t0 := time.Now()
	p.ticks.Publish(tick{read: t0, status: sampleStatus(), sample: Sample{T: 1}})
	p.Events.Publish(supervisor.Event{Time: t0.Add(time.Millisecond), Type: supervisor.EventExit, App: "web", Worker: 2, PID: 20})
	if _, err := v.sendEvents(); err != nil {
		t.Fatal(err)
	}
	if err := v.sendTicks(); err != nil {
		t.Fatal(err)
	}
	out := rec.Body.String()
	if !strings.Contains(out, "event: event\n") || !strings.Contains(out, "event: sample\n") || strings.Contains(out, "event: status\n") {
		t.Fatalf("a reading older than the event sent after it:\n%s", out)
	}
	rec.Body.Reset()
	p.ticks.Publish(tick{read: t0.Add(2 * time.Millisecond), status: sampleStatus(), sample: Sample{T: 2}})
	if err := v.sendTicks(); err != nil {
		t.Fatal(err)
	}
	if out := rec.Body.String(); !strings.Contains(out, "event: status\n") {
		t.Fatalf("a reading newer than the event not sent:\n%s", out)
	}
}

// BenchmarkRecord1000Workers: one reading of 1000 workers into a full
// history (default window and interval); reports the history's size.
func BenchmarkRecord1000Workers(b *testing.B) {
	st := control.StatusResponse{Apps: []control.App{{Name: "web", CPUPercent: ptr(1.0), RSSBytes: ptr(int64(1 << 20))}}}
	for id := 1; id <= 1000; id++ {
		st.Workers = append(st.Workers, control.Worker{App: "web", ID: id, PID: id, CPUPercent: ptr(1.0), RSSBytes: ptr(int64(1 << 20))})
	}
	h := newHistory(DefaultWindow, 5*time.Second)
	t0 := time.Now()
	for i := range h.limit {
		h.record(sampleOf(st, t0.Add(time.Duration(i)*5*time.Second)))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.record(sampleOf(st, t0.Add(time.Duration(h.limit+i)*5*time.Second)))
	}
	b.StopTimer()
	series, points := h.len()
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(points*int(unsafe.Sizeof(Point{})))/(1<<20), "MiB-of-points")
}
