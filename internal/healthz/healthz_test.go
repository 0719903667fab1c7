package healthz

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

var (
	webReady   = supervisor.AppReadiness{Name: "web", Instances: 2, Available: 2, Need: 2}
	webHalf    = supervisor.AppReadiness{Name: "web", Instances: 2, Available: 1, Need: 2}
	apiReady   = supervisor.AppReadiness{Name: "api", Instances: 1, Available: 1, Need: 1}
	jobLooping = supervisor.AppReadiness{Name: "job", Instances: 1, Need: 1, CrashLoop: "5 exits in 1m0s, last exit 1"}
	dbFailing  = supervisor.AppReadiness{Name: "db", Instances: 1, Need: 1, Critical: true, CrashLoop: "3 exits in 10s, last exit 2"}
)

// fixed returns a Readiness function that answers rd.
func fixed(rd supervisor.Readiness) func(context.Context) (supervisor.Readiness, error) {
	return func(context.Context) (supervisor.Readiness, error) { return rd, nil }
}

// blocked is a loop that never answers: it returns when ctx is done, as
// Supervisor.Readiness does.
func blocked(ctx context.Context) (supervisor.Readiness, error) {
	<-ctx.Done()
	return supervisor.Readiness{}, ctx.Err()
}

func notRunning(context.Context) (supervisor.Readiness, error) {
	return supervisor.Readiness{}, supervisor.ErrNotRunning
}

func TestEndpoints(t *testing.T) {
	running := supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady, webReady}}
	tests := []struct {
		name      string
		readiness func(context.Context) (supervisor.Readiness, error)
		target    string
		code      int
		body      string
	}{
		{"livez ok", fixed(running), "/livez", 200, "ok: paddock's loop answered\n"},
		{"livez while stopping", fixed(supervisor.Readiness{Stopping: true}), "/livez", 200, "ok: paddock's loop answered\n"},
		{"livez loop stuck", blocked, "/livez", 503, "paddock's loop did not answer within 10ms\n"},
		{"livez not running", notRunning, "/livez", 503, "paddock is not running: its loop has returned\n"},

		{"healthz ok", fixed(running), "/healthz", 200, "ok\n"},
		{"healthz stopping", fixed(supervisor.Readiness{Stopping: true}), "/healthz", 503, "unhealthy: paddock is stopping\n"},
		{"healthz loop stuck", blocked, "/healthz", 503, "paddock's loop did not answer within 10ms\n"},
		{"healthz non-critical crash loop", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{jobLooping, webReady}}), "/healthz", 200,
			"ok\njob: crash-looping (not critical): 5 exits in 1m0s, last exit 1\n"},
		{"healthz critical failing", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{dbFailing, jobLooping}}), "/healthz", 503,
			"unhealthy: 1 critical app failing\ndb: critical, crash-looping: 3 exits in 10s, last exit 2\njob: crash-looping (not critical): 5 exits in 1m0s, last exit 1\n"},

		{"readyz ok", fixed(running), "/readyz", 200, "ok: 2 apps ready\napi: 1/1 available\nweb: 2/2 available\n"},
		{"readyz no apps", fixed(supervisor.Readiness{}), "/readyz", 200, "ok: 0 apps ready\n"},
		{"readyz one not ready", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady, webHalf}}), "/readyz", 503,
			"not ready: web\napi: 1/1 available\nweb: not ready: 1/2 available\n"},
		{"readyz crash loop", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{jobLooping}}), "/readyz", 503,
			"not ready: job\njob: not ready: 0/1 available; crash-looping: 5 exits in 1m0s, last exit 1\n"},
		{"readyz asked app ready", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady, webHalf}}), "/readyz?app=api", 200,
			"ok: 1 app ready\napi: 1/1 available\n"},
		{"readyz asked apps, one not", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady, webHalf}}), "/readyz?app=api&app=web", 503,
			"not ready: web\napi: 1/1 available\nweb: not ready: 1/2 available\n"},
		{"readyz asked apps comma", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady, webHalf}}), "/readyz?app=web,api", 503,
			"not ready: web\nweb: not ready: 1/2 available\napi: 1/1 available\n"},
		{"readyz asked app unknown", fixed(running), "/readyz?app=nope", 503, "not ready: 1 app unknown\nnope: not in the running manifests\n"},
		{"readyz empty app parameter means all", fixed(running), "/readyz?app=", 200, "ok: 2 apps ready\napi: 1/1 available\nweb: 2/2 available\n"},
		{"readyz with the revision", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady},
			Manifests: supervisor.ManifestsStatus{Revision: revision.Revision{Kind: "git", ID: "3f2c9a"}}}), "/readyz", 200,
			"ok: 1 app ready\napi: 1/1 available\nrevision: git 3f2c9a\n"},
		{"readyz with manifests modified against the revision", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady},
			Manifests: supervisor.ManifestsStatus{Revision: revision.Revision{Kind: "git", ID: "3f2c9a", Modified: "deploy/web.yaml"}}}), "/readyz", 200,
			"ok: 1 app ready\napi: 1/1 available\nrevision: git 3f2c9a (modified: deploy/web.yaml)\n"},
		{"readyz with manifests not told modified or not", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady},
			Manifests: supervisor.ManifestsStatus{Revision: revision.Revision{Kind: "git", ID: "3f2c9a", ModifiedUnknown: true}}}), "/readyz", 200,
			"ok: 1 app ready\napi: 1/1 available\nrevision: git 3f2c9a (modified: unknown)\n"},
		{"readyz not ready, with a rejected revision", fixed(supervisor.Readiness{Apps: []supervisor.AppReadiness{webHalf},
			Manifests: supervisor.ManifestsStatus{Revision: revision.Revision{Kind: "git", ID: "3f2c9a"},
				Rejected: &supervisor.RejectedRevision{Revision: revision.Revision{Kind: "git", ID: "9a1b7e"}, Error: "web.yaml:4:16: apps.web.instances: must be an integer", Errors: 1}}}), "/readyz", 503,
			"not ready: web\nweb: not ready: 1/2 available\nrevision: git 3f2c9a\nrejected: git 9a1b7e: web.yaml:4:16: apps.web.instances: must be an integer\n"},
		{"readyz stopping", fixed(supervisor.Readiness{Stopping: true, Apps: []supervisor.AppReadiness{webReady}}), "/readyz", 503,
			"not ready: paddock is stopping\n"},
		{"readyz loop stuck", blocked, "/readyz", 503, "paddock's loop did not answer within 10ms\n"},
		{"readyz other error", func(context.Context) (supervisor.Readiness, error) { return supervisor.Readiness{}, errors.New("boom") },
			"/readyz", 503, "paddock's loop did not answer: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			// A loop that never answers misses any timeout: 10ms keeps
			// the test short and decides nothing by the clock.
			(&Handler{Readiness: tt.readiness, Timeout: 10 * time.Millisecond}).Register(mux)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.target, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.code || string(body) != tt.body {
				t.Errorf("GET %s: %d %q, want %d %q", tt.target, rec.Code, body, tt.code, tt.body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
}

// TestDefaultTimeout: with no Timeout, the bound is DefaultTimeout,
// passed to the loop as the context's deadline.
func TestDefaultTimeout(t *testing.T) {
	var deadline time.Time
	h := &Handler{Readiness: func(ctx context.Context) (supervisor.Readiness, error) {
		var ok bool
		if deadline, ok = ctx.Deadline(); !ok {
			t.Error("no deadline")
		}
		return supervisor.Readiness{}, nil
	}}
	mux := http.NewServeMux()
	h.Register(mux)
	before := time.Now()
	mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/livez", nil))
	after := time.Now()
	// The deadline was set between before and after, DefaultTimeout on.
	if deadline.Before(before.Add(DefaultTimeout)) || deadline.After(after.Add(DefaultTimeout)) {
		t.Errorf("deadline %s, want DefaultTimeout after the request (%s .. %s)", deadline,
			before.Add(DefaultTimeout), after.Add(DefaultTimeout))
	}
}

// TestPathsRegistered: every path of Paths is served, and only those.
func TestPathsRegistered(t *testing.T) {
	mux := http.NewServeMux()
	(&Handler{Readiness: fixed(supervisor.Readiness{})}).Register(mux)
	for _, p := range append([]string{"/health", "/ready"}, Paths...) {
		_, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, p, nil))
		served := pattern != ""
		want := false
		for _, q := range Paths {
			want = want || q == p
		}
		if served != want {
			t.Errorf("%s served: %v, want %v", p, served, want)
		}
	}
}

// FuzzReadyz: any query string gets a 200 or a 503 with a verdict on its
// first line, never a panic; an app asked for that does not run is never
// ready.
func FuzzReadyz(f *testing.F) {
	for _, q := range []string{"", "app=web", "app=web,api&app=job", "app=%zz", "app=,,", "app=web&app=web", "x=1;app=api"} {
		f.Add(q)
	}
	rd := supervisor.Readiness{Apps: []supervisor.AppReadiness{apiReady, webHalf}}
	mux := http.NewServeMux()
	(&Handler{Readiness: fixed(rd)}).Register(mux)
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		body := rec.Body.String()
		switch {
		case rec.Code == 200 && strings.HasPrefix(body, "ok: "):
			for _, name := range askedApps(req) {
				if name != "api" {
					t.Fatalf("?%s: 200 with %q asked:\n%s", query, name, body)
				}
			}
		case rec.Code == 503 && strings.HasPrefix(body, "not ready: "):
		default:
			t.Fatalf("?%s: %d %q", query, rec.Code, body)
		}
	})
}
