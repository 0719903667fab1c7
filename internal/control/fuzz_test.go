package control

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzControlRequest sends arbitrary methods, paths and bodies to the API's
// handler, backed by a running supervisor (one app, no worker): no input may
// panic it or get a 5xx other than 503.
func FuzzControlRequest(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"POST", "/v1/apps/web/scale", `{"instances": 0}`},
		{"POST", "/v1/apps/web/scale", `{"instances": -5}`},
		{"POST", "/v1/apps/web/scale", `{"instances": 1e99}`},
		{"POST", "/v1/apps/web/send", `{"worker": 3, "message": {"a": [1, 2]}}`},
		{"POST", "/v1/apps/web/signal", `{"signal": "SIGSTOP", "worker": -1}`},
		{"POST", "/v1/diff", `{"paths": ["/nonexistent", ""]}`},
		{"POST", "/v1/apps/%2F..%2F/restart", ""},
		{"GET", "/v1/logs?app=web&worker=x&lines=99999999999999999999", ""},
		{"GET", "/v1/events?app=%00", ""},
		{"DELETE", "/v1/status", "{"},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	startSupervisor(f, "apps:\n  web:\n    exec: /bin/sleep\n    args: [1000]\n    instances: 0\n")
	handler := lastServer.Handler()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || method == "" || strings.ContainsAny(method, " \t\r\n") {
			return // not a request an HTTP server would route
		}
		var scale ScaleRequest
		if strings.HasSuffix(path, "/scale") && json.Unmarshal([]byte(body), &scale) == nil &&
			scale.Instances != nil && *scale.Instances > 2 {
			return // a valid scale-up forks real workers: keep the fuzzer from forking thousands
		}
		req, err := http.NewRequest(method, "http://paddock"+path, bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s %s %q: status %d: %s", method, path, body, rec.Code, rec.Body)
		}
	})
}
