package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// The browser test's knobs, from the environment:
//
//	PADDOCK_CHROMIUM             the browser to run (default /usr/bin/chromium;
//	                             make browser-deps installs Debian's chromium)
//	PADDOCK_SKIP_BROWSER=1       skip the browser test where no browser can be
//	                             had; without it, a missing browser fails the test
//	PADDOCK_SCREENSHOT           where to write the page's screenshot (PNG);
//	                             default bin/status-page.png at the module root
//	PADDOCK_SCREENSHOT_SAMPLES   wait until the charts have this many readings
//	                             before the screenshot (make status-page-screenshot)
const (
	chromiumEnv      = "PADDOCK_CHROMIUM"
	skipBrowserEnv   = "PADDOCK_SKIP_BROWSER"
	screenshotEnv    = "PADDOCK_SCREENSHOT"
	screenshotPtsEnv = "PADDOCK_SCREENSHOT_SAMPLES"
)

// browserApps is the manifest the browser test supervises: web's workers
// use some CPU, so that the charts have something to show, and wait 2 s
// before a restart, so that an exited worker is on the page for a while.
const browserApps = `apps:
  web:
    exec: /bin/sh
    args: ["-c", "while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.1; done"]
    instances: 2
    backoff: {initial: 2s}
  queue:
    exec: /bin/sleep
    args: ["100000"]
    instances: 1
`

// chromium returns the browser to run, failing the test when there is
// none, unless PADDOCK_SKIP_BROWSER says to skip.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv(chromiumEnv)
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv(skipBrowserEnv) == "1" {
			t.Skipf("no browser (%v) and %s=1", err, skipBrowserEnv)
		}
		t.Fatalf("no browser to test the status page with: %v (make browser-deps installs Debian's chromium; "+
			"%s names another; %s=1 skips this test)", err, chromiumEnv, skipBrowserEnv)
	}
	return path
}

// browser is a headless chromium showing one page, with what it logged
// and every URL it asked for.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	requests []string
	problems []string // exceptions, console errors, CSP violations
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// On a machine without a network, the browser's own background
		// connections make it refuse the page's: none of them.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1100),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception: %s (%s:%d)", text, d.URL, d.LineNumber))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				b.problems = append(b.problems, fmt.Sprintf("console %s: %v", ev.Type, ev.Args))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Source == log.EntrySourceSecurity {
				b.problems = append(b.problems, fmt.Sprintf("log %s/%s: %s (%s)", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return b
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// workerRow is what a person reads in a worker's row of the page.
type workerRow struct {
	Key   string `json:"key"`
	PID   string `json:"pid"`
	State string `json:"state"`
	Text  string `json:"text"`
}

const readRows = `Array.from(document.querySelectorAll("#workers tbody tr")).map(tr => ({
	key: tr.dataset.worker, pid: tr.querySelector("td.pid").innerText,
	state: tr.querySelector("td.state").innerText, text: tr.innerText}))`

// waitPage waits until cond holds for the page's worker rows.
func waitPage(t *testing.T, b *browser, what string, cond func(rows []workerRow) bool) []workerRow {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		rows := eval[[]workerRow](t, b, readRows)
		if cond(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s on the page; its workers:\n%+v\nevents:\n%s", patience, what, rows,
				eval[string](t, b, `document.querySelector("#events").innerText`))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStatusPageInBrowser: the status page, in a real browser against a
// real paddock, shows the apps and workers as the status API does; a worker
// killed with SIGKILL shows as exited, then its replacement (a new worker,
// with a new pid) appears; a rolling update that stalls shows as stalled;
// the page loads nothing but its own origin's
// files, under its Content-Security-Policy, without an error. It keeps a
// screenshot.
func TestStatusPageInBrowser(t *testing.T) {
	b := newBrowser(t)
	sock := socketPath(t)
	manifest := writeManifest(t, browserApps)
	r := startWithSocket(t, sock, "--http-addr", "127.0.0.1:0", manifest)
	ws := waitWorkers(t, sock, "web", 2)
	base := pageURL(t, r)

	if err := chromedp.Do(b.ctx, chromedp.Navigate(base)); err != nil {
		t.Fatalf("opening %s: %v", base, err)
	}
	seesWorkers(t, b, ws)
	var victim control.Worker
	for _, w := range ws {
		victim = w
		break
	}
	replacement := seesReplacement(t, b, ws, victim)
	// The replacement the page shows is the one paddock runs.
	if w, ok := liveWorkers(statusOf(t, sock), "web")[atoiSuffix(replacement.Key)]; !ok || fmt.Sprint(w.PID) != replacement.PID {
		t.Errorf("the page shows %s with pid %s; paddock's status says %+v", replacement.Key, replacement.PID, w)
	}
	events := eval[string](t, b, `document.querySelector("#events").innerText`)
	if want := fmt.Sprintf("pid %d · signal SIGKILL", victim.PID); !strings.Contains(events, want) {
		t.Errorf("the events do not show the exit (%q):\n%s", want, events)
	}

	seesStalledRollout(t, b, manifest)

	waitSamples(t, b)
	writeScreenshot(t, b)
	b.check(t, base)
}

// seesStalledRollout changes web's manifest to a release that crashes at
// start, and waits until the page shows its rolling update stalled, the
// old workers still running, and none of the new one's output.
func seesStalledRollout(t *testing.T, b *browser, manifest string) {
	t.Helper()
	bad := strings.Replace(browserApps, `args: ["-c", "while`, `args: ["-c", "echo bad release; exit 3", "while`, 1)
	if err := testkit.WriteFile(manifest, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	var text string
	testkit.WaitFor(t, "the stalled rollout of web on the page", func() bool {
		text = eval[string](t, b, `document.querySelector("#rollouts-section").hidden ? "" : document.querySelector("#rollouts").innerText`)
		return strings.Contains(text, "web") && strings.Contains(text, "stalled")
	})
	// The failing worker's output ("bad release") stays behind the
	// control socket.
	testkit.WaitFor(t, "the rollout-stalled event on the page", func() bool {
		return strings.Contains(eval[string](t, b, `document.querySelector("#events").innerText`), "rollout-stalled")
	})
	if page := eval[string](t, b, `document.body.innerText`); strings.Contains(page, "bad release") {
		t.Errorf("the page shows a worker's output:\n%s", page)
	}
	rows := eval[[]workerRow](t, b, readRows)
	running := 0
	for _, row := range rows {
		if strings.HasPrefix(row.Key, "web/") && row.State == "running" {
			running++
		}
	}
	if running != 2 {
		t.Errorf("with web's rollout stalled (%s), the page shows %d web workers running, want the 2 old ones:\n%+v", text, running, rows)
	}
}

// seesWorkers waits until the page shows each web worker of ws, with its
// pid, running, and checks the apps table: what a person sees.
func seesWorkers(t *testing.T, b *browser, ws map[int]control.Worker) {
	t.Helper()
	rows := waitPage(t, b, "both web workers running", func(rows []workerRow) bool {
		running := 0
		for _, w := range ws {
			for _, row := range rows {
				if row.Key == fmt.Sprintf("web/%d", w.ID) && row.PID == fmt.Sprint(w.PID) && row.State == "running" {
					running++
				}
			}
		}
		return running == len(ws)
	})
	if len(rows) != len(ws)+1 {
		t.Errorf("%d worker rows, want %d (web, queue):\n%v", len(rows), len(ws)+1, rows)
	}
	apps := eval[string](t, b, `document.querySelector("#apps").innerText`)
	for _, want := range []string{"web", "2/2", "queue", "1/1"} {
		if !strings.Contains(apps, want) {
			t.Errorf("the apps table does not show %q:\n%s", want, apps)
		}
	}
}

// seesReplacement kills victim with SIGKILL, waits until the page shows
// the web workers running again with a new one in its place, and checks
// that the victim's row showed it exited meanwhile. It returns the new
// worker's row.
func seesReplacement(t *testing.T, b *browser, ws map[int]control.Worker, victim control.Worker) workerRow {
	t.Helper()
	key := fmt.Sprintf("web/%d", victim.ID)
	// Every state the victim's row shows, from now on.
	eval[bool](t, b, fmt.Sprintf(`(() => {
		window.seen = [];
		const note = () => {
			const tr = document.querySelector('#workers tr[data-worker=%q]');
			if (tr) window.seen.push(tr.querySelector("td.pid").innerText + " " + tr.querySelector("td.state").innerText);
		};
		new MutationObserver(note).observe(document.querySelector("#workers tbody"), {childList: true, subtree: true, characterData: true});
		return true;
	})()`, key))
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// paddock replaces it with a new worker (a new id and pid).
	var replacement workerRow
	waitPage(t, b, key+" replaced by a new running worker", func(rows []workerRow) bool {
		replacement = workerRow{}
		web := 0
		for _, row := range rows {
			if !strings.HasPrefix(row.Key, "web/") {
				continue
			}
			web++
			if row.Key == key || row.State != "running" {
				return false
			}
			if _, old := ws[atoiSuffix(row.Key)]; !old {
				replacement = row
			}
		}
		return web == len(ws) && replacement.Key != ""
	})
	seen := eval[[]string](t, b, "window.seen")
	exited := false
	for _, s := range seen {
		exited = exited || strings.Contains(s, "exited")
	}
	if !exited {
		t.Errorf("the page never showed %s as exited before its replacement; its row showed: %q", key, seen)
	}
	return replacement
}

// check fails the test when the page asked for anything but base's files,
// or the browser reported an error (an exception, a console error, a
// Content-Security-Policy violation).
func (b *browser) check(t *testing.T, base string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.requests {
		if !strings.HasPrefix(u, base) {
			t.Errorf("the page asked for %s: it must load nothing but %s", u, base)
		}
	}
	if len(b.problems) > 0 {
		t.Errorf("the browser reported:\n%s", strings.Join(b.problems, "\n"))
	}
}

// atoiSuffix returns the worker id of "app/id" (0 when there is none).
func atoiSuffix(key string) int {
	_, id, _ := strings.Cut(key, "/")
	n, _ := strconv.Atoi(id)
	return n
}

// pageURL returns the status page's URL from paddock's log.
func pageURL(t *testing.T, r *running) string {
	t.Helper()
	var url string
	testkit.WaitFor(t, "the status page's address in the log", func() bool {
		url, _ = r.logValue("serving the status page", "url")
		return url != ""
	})
	return url
}

// waitSamples waits until the page's charts have PADDOCK_SCREENSHOT_SAMPLES
// readings of every web worker (none when unset).
func waitSamples(t *testing.T, b *browser) {
	t.Helper()
	n := os.Getenv(screenshotPtsEnv)
	if n == "" {
		return
	}
	testkit.WaitFor(t, n+" readings in the charts", func() bool {
		return eval[bool](t, b, fmt.Sprintf(`(() => {
			const ws = Object.entries(state.history.apps);
			return ws.length > 0 && ws.every(([k, pts]) => pts.length >= %s);
		})()`, n))
	})
}

// writeScreenshot keeps a PNG of the whole page at PADDOCK_SCREENSHOT, or
// bin/status-page.png.
func writeScreenshot(t *testing.T, b *browser) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := os.Getenv(screenshotEnv)
	if path == "" {
		root, err := filepath.Abs("../..")
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(root, "bin", "status-page.png")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s (%d bytes)", path, len(png))
}

// TestHTTPAddrSharesMetricsListener: --metrics-addr naming --http-addr's
// address shares one listener, which serves the page and /metrics; every
// method but GET and HEAD is refused on it.
func TestHTTPAddrSharesMetricsListener(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	r := startWithSocket(t, sock, "--http-addr", ":0", "--metrics-addr", ":0", manifest)
	waitWorkers(t, sock, "web", 1)
	base := pageURL(t, r)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("--http-addr :0 serves %s, want loopback (127.0.0.1)", base)
	}
	if urls := r.loggedAll("serving metrics", "url"); len(urls) != 1 || urls[0] != base+"metrics" {
		t.Errorf("metrics served at %q, want only %smetrics", urls, base)
	}
	if code, body := httpGet(t, base+"metrics"); code != 200 || !strings.Contains(body, `paddock_workers_ready{app="web"} 1`) {
		t.Errorf("GET /metrics: %d\n%s", code, body)
	}
	code, body := httpGet(t, base+"api/status")
	var st control.StatusResponse
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Workers) != 1 {
		t.Errorf("GET /api/status: %d %s", code, body)
	}
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		for _, path := range []string{"", "metrics", "api/status", "v1/stop"} {
			if code := httpDo(t, method, base+path); code != http.StatusMethodNotAllowed {
				t.Errorf("%s /%s: %d, want 405", method, path, code)
			}
		}
	}
	if st := statusOf(t, sock); len(st.Workers) != 1 || st.Workers[0].State != "running" {
		t.Errorf("after the refused requests: %+v", st.Workers)
	}
}

// TestHTTPAddrWarnsBeyondLoopback: a status page bound beyond loopback
// (0.0.0.0) is served and paddock warns, once, that it has no
// authentication; bound to loopback it does not warn.
func TestHTTPAddrWarnsBeyondLoopback(t *testing.T) {
	t.Parallel()
	const warning = "the status page is reachable from other machines and has no authentication: " +
		"bind it to loopback and put a reverse proxy with authentication and TLS in front (see README, Status page)"
	for _, c := range []struct {
		addr string
		warn bool
	}{{"0.0.0.0:0", true}, {"127.0.0.1:0", false}, {":0", false}} {
		sock := socketPath(t)
		r := startWithSocket(t, sock, "--http-addr", c.addr, writeManifest(t, fmt.Sprintf(sleepers, 1)))
		waitWorkers(t, sock, "web", 1)
		base := pageURL(t, r) // logged after the warning
		if code, _ := httpGet(t, base); code != 200 {
			t.Errorf("--http-addr %s: GET / %d", c.addr, code)
		}
		if got := r.loggedAll(warning, "addr"); len(got) != map[bool]int{true: 1, false: 0}[c.warn] {
			t.Errorf("--http-addr %s (serving %s): warned %d times, want the warning %v", c.addr, base, len(got), c.warn)
		}
	}
}

// loggedAll returns the field of each log record with message msg.
func (r *running) loggedAll(msg, field string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.logs {
		if m["msg"] == msg {
			v, _ := m[field].(string)
			out = append(out, v)
		}
	}
	return out
}

// httpGet GETs url and returns the status code and the whole body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// httpDo sends a request with a JSON body and returns the status code.
func httpDo(t *testing.T, method, url string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPAddrAndMetricsAddrApart: --http-addr and --metrics-addr naming
// different addresses get a listener each: the page's serves /metrics too,
// the other /metrics alone; both are read-only.
func TestHTTPAddrAndMetricsAddrApart(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	manifest := writeManifest(t, fmt.Sprintf(sleepers, 1))
	r := startWithSocket(t, sock, "--http-addr", "127.0.0.1:0", "--metrics-addr", "localhost:0", manifest)
	waitWorkers(t, sock, "web", 1)
	base := pageURL(t, r)
	var urls []string
	testkit.WaitFor(t, "the metrics address in the log", func() bool {
		urls = r.loggedAll("serving metrics", "url")
		return len(urls) > 0
	})
	if len(urls) != 1 || urls[0] == base+"metrics" {
		t.Fatalf("metrics served at %q; want one listener of its own, not %s", urls, base)
	}
	metricsBase := strings.TrimSuffix(urls[0], "metrics")
	for _, tc := range []struct {
		url  string
		want int
	}{
		{base + "metrics", 200},
		{base + "api/status", 200},
		{metricsBase + "metrics", 200},
		{metricsBase, 404},
		{metricsBase + "api/status", 404},
	} {
		if code, _ := httpGet(t, tc.url); code != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.url, code, tc.want)
		}
	}
	if code := httpDo(t, "POST", metricsBase+"metrics"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST %smetrics: %d, want 405", metricsBase, code)
	}
}
