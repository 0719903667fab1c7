package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/paddock-sh/paddock/internal/fanout"
	"github.com/paddock-sh/paddock/internal/logbuf"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
)

// TestStatusOf: the one mapping from errors to statuses, including the
// errors that match two rules.
func TestStatusOf(t *testing.T) {
	unknown := fmt.Errorf("web: %w", supervisor.ErrUnknownApp)
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"no endpoint", fmt.Errorf("%w: GET /x", errNoEndpoint), 404},
		{"unknown app", unknown, 404},
		{"unknown app, marked bad request", badRequest(unknown), 404},
		{"not running", supervisor.ErrNotRunning, 503},
		{"not running, marked invalid manifests", withKind(errInvalidManifests, supervisor.ErrNotRunning), 503},
		{"too many followers", tooManyFollowers(fanout.ErrTooManyFollowers, "events"), 503},
		{"invalid manifests", withKind(errInvalidManifests, errors.New("x.yaml:1:1: apps: bad")), 422},
		{"reload cut short by its request", withKind(errInvalidManifests, context.Canceled), 422},
		{"request ended", context.Canceled, 503},
		{"request ended, marked bad request", badRequest(context.Canceled), 503},
		{"bad request", badRequest(errors.New("request body: bad")), 400},
		{"anything else", errors.New("no live worker"), 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusOf(tc.err); got != tc.want {
				t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// TestKindKeepsMessageAndErrors: marking an error changes neither its
// message nor the manifest errors an answer lists.
func TestKindKeepsMessageAndErrors(t *testing.T) {
	var me *multierror.Error
	me = multierror.Append(me, errors.New("a.yaml:1:1: apps.web: one"), errors.New("a.yaml:2:1: apps.api: two"))
	err := withKind(errInvalidManifests, me)
	if err.Error() != me.Error() {
		t.Errorf("message %q, want %q", err.Error(), me.Error())
	}
	rec := httptest.NewRecorder()
	writeError(rec, statusOf(err), err)
	var body ErrorResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 422 || body.Error != "2 errors" || len(body.Errors) != 2 {
		t.Errorf("answer %d %+v, want 422, 2 errors listed", rec.Code, body)
	}
	if withKind(errBadRequest, nil) != nil {
		t.Error("withKind(kind, nil) is not nil")
	}
}

// answer sends a request to h and returns the status and the error body.
func answer(t *testing.T, h http.Handler, method, path, body string) (int, ErrorResponse) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp ErrorResponse
	if rec.Code >= 300 {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("%s %s: %d with body %q: %v", method, path, rec.Code, rec.Body, err)
		}
	}
	return rec.Code, resp
}

// TestStoppedSupervisorAnswers503: every request a stopped supervisor
// cannot carry out is a 503, whatever else is wrong with it; requests
// that are wrong on their own are answered as such first.
func TestStoppedSupervisorAnswers503(t *testing.T) {
	empty := func() (*manifest.Set, error) { return &manifest.Set{Apps: map[string]*manifest.App{}}, nil }
	sup := supervisor.New(supervisor.Options{Logger: slog.New(slog.DiscardHandler), Load: empty})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, &manifest.Set{Apps: map[string]*manifest.App{}}) }()
	cancel()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	srv := &Server{Supervisor: sup, Events: NewHub(), Logs: logbuf.New(0, 0, 0), Logger: slog.New(slog.DiscardHandler),
		Load: func(p []string) (*manifest.Set, error) { return manifest.Load(p, manifest.CurrentHost()) }}
	h := srv.Handler()
	for _, tc := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		{"GET", "/v1/status", "", 503, supervisor.ErrNotRunning.Error()},
		{"POST", "/v1/reload", "", 503, supervisor.ErrNotRunning.Error()},
		{"POST", "/v1/apps/web/scale", `{"instances": 2}`, 503, supervisor.ErrNotRunning.Error()},
		{"POST", "/v1/apps/web/restart", "", 503, ""},
		{"GET", "/v1/logs?app=web", "", 503, ""},
		{"POST", "/v1/apps/web/scale", `{}`, 400, `request body: "instances" is required`},
		{"POST", "/v1/apps/web/scale", `{"instance": 2}`, 400, ""},
		{"POST", "/v1/apps/web/signal", `{"signal": "NOPE"}`, 400, `unknown signal "NOPE"`},
		{"POST", "/v1/apps/web/send", `{}`, 400, `request body: "message" is required`},
		{"GET", "/v1/logs?worker=x", "", 400, `worker: want a worker id, got "x"`},
		{"POST", "/v1/diff", `{"paths": ["/nonexistent/paddock.yaml"]}`, 422, ""},
		{"GET", "/v2/status", "", 404, "no such endpoint: GET /v2/status (see docs/api.md)"},
	} {
		code, body := answer(t, h, tc.method, tc.path, tc.body)
		if code != tc.want || (tc.msg != "" && body.Error != tc.msg) {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.path, tc.body, code, body.Error, tc.want, tc.msg)
		}
	}
}

// TestRunningSupervisorErrorStatuses: what a running supervisor refuses.
func TestRunningSupervisorErrorStatuses(t *testing.T) {
	startSupervisor(t, "apps:\n  web:\n    exec: /bin/sleep\n    args: [1000]\n")
	h := lastServer.Handler()
	for _, tc := range []struct {
		method, path, body string
		want               int
		msg                string
	}{
		// startSupervisor's supervisor has no loader: its reload fails.
		{"POST", "/v1/reload", "", 422, "reload: no manifest loader configured"},
		{"GET", "/v1/logs?app=nope", "", 404, "nope: " + supervisor.ErrUnknownApp.Error()},
		{"POST", "/v1/apps/nope/scale", `{"instances": 2}`, 404, "nope: " + supervisor.ErrUnknownApp.Error()},
		{"POST", "/v1/apps/web/scale", `{"instances": -1}`, 400, ""},
		{"POST", "/v1/apps/web/signal", `{"worker": 9, "signal": "HUP"}`, 409, "web/9: no such live worker"},
	} {
		code, body := answer(t, h, tc.method, tc.path, tc.body)
		if code != tc.want || (tc.msg != "" && body.Error != tc.msg) {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.path, tc.body, code, body.Error, tc.want, tc.msg)
		}
	}
}
