// Package healthz answers paddock's health endpoints, for Kubernetes
// probes and load balancers: /livez (the owner loop answers), /healthz
// (it answers, paddock is not stopping and no critical app is failing)
// and /readyz (every app, or the apps asked for, has the available
// workers it needs).
package healthz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// DefaultTimeout bounds the owner loop's answer to a probe when
// Handler.Timeout is zero. A loop that handles a request within it is
// live: the loop takes a request between two steps, and no step waits on
// a worker. It is shorter than the timeoutSeconds of the probes in
// deploy/kubernetes, so that a probe reads paddock's reason rather than
// its own timeout.
const DefaultTimeout = 5 * time.Second

// Paths are the endpoints Register serves, in the order they are
// documented.
var Paths = []string{"/livez", "/healthz", "/readyz"}

// Handler answers the health endpoints from the supervisor's loop.
type Handler struct {
	// Readiness asks the owner loop (supervisor.Supervisor.Readiness).
	Readiness func(context.Context) (supervisor.Readiness, error)
	// Timeout bounds the loop's answer; DefaultTimeout when zero.
	Timeout time.Duration
}

// Register adds h's endpoints to mux, for GET (and so HEAD).
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /livez", h.livez)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
}

// ask returns the loop's answer, or writes 503 with the reason it could
// not be had and returns false.
func (h *Handler) ask(w http.ResponseWriter, r *http.Request) (supervisor.Readiness, bool) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	rd, err := h.Readiness(ctx)
	switch {
	case err == nil:
		return rd, true
	case errors.Is(err, supervisor.ErrNotRunning):
		reply(w, http.StatusServiceUnavailable, "paddock is not running: its loop has returned\n")
	case errors.Is(err, context.DeadlineExceeded):
		reply(w, http.StatusServiceUnavailable, fmt.Sprintf("paddock's loop did not answer within %s\n", timeout))
	default:
		reply(w, http.StatusServiceUnavailable, fmt.Sprintf("paddock's loop did not answer: %v\n", err))
	}
	return rd, false
}

// livez answers 200 when the loop answers within the timeout, during a
// graceful shutdown too: a liveness probe must not kill paddock while it
// stops its workers.
func (h *Handler) livez(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.ask(w, r); ok {
		reply(w, http.StatusOK, "ok: paddock's loop answered\n")
	}
}

// healthz answers 200 when the loop answers, paddock is not stopping and
// no critical app is crash-looping (on its way to making paddock exit 3).
// Crash loops of other apps are listed and do not fail it.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	rd, ok := h.ask(w, r)
	if !ok {
		return
	}
	if rd.Stopping {
		reply(w, http.StatusServiceUnavailable, "unhealthy: paddock is stopping\n")
		return
	}
	var failing, notes []string
	for _, a := range rd.Apps {
		switch {
		case a.Failing():
			failing = append(failing, fmt.Sprintf("%s: critical, crash-looping: %s\n", a.Name, a.CrashLoop))
		case a.CrashLoop != "":
			notes = append(notes, fmt.Sprintf("%s: crash-looping (not critical): %s\n", a.Name, a.CrashLoop))
		}
	}
	if len(failing) > 0 {
		reply(w, http.StatusServiceUnavailable, "unhealthy: "+plural.Count(len(failing), "critical app")+" failing\n"+
			strings.Join(failing, "")+strings.Join(notes, ""))
		return
	}
	reply(w, http.StatusOK, "ok\n"+strings.Join(notes, ""))
}

// readyz answers 200 when every app (or each app named by an app query
// parameter: ?app=web&app=api, or ?app=web,api) has the available workers
// it needs, 503 otherwise and while paddock is stopping, naming each app
// that is not ready and why. An app asked for that is not in the running
// manifests is not ready.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	rd, ok := h.ask(w, r)
	if !ok {
		return
	}
	if rd.Stopping {
		reply(w, http.StatusServiceUnavailable, "not ready: paddock is stopping\n")
		return
	}
	apps := rd.Apps
	if asked := askedApps(r); asked != nil {
		apps = nil
		byName := map[string]supervisor.AppReadiness{}
		for _, a := range rd.Apps {
			byName[a.Name] = a
		}
		var missing []string
		for _, name := range asked {
			if a, ok := byName[name]; ok {
				apps = append(apps, a)
			} else {
				missing = append(missing, fmt.Sprintf("%s: not in the running manifests\n", name))
			}
		}
		if len(missing) > 0 {
			reply(w, http.StatusServiceUnavailable, "not ready: "+plural.Count(len(missing), "app")+" unknown\n"+strings.Join(missing, ""))
			return
		}
	}
	var notReady, lines []string
	for _, a := range apps {
		if a.Ready() {
			lines = append(lines, fmt.Sprintf("%s: %d/%d available\n", a.Name, a.Available, a.Need))
		} else {
			notReady = append(notReady, a.Name)
			lines = append(lines, fmt.Sprintf("%s: not ready: %s\n", a.Name, a.Why()))
		}
	}
	if len(notReady) > 0 {
		reply(w, http.StatusServiceUnavailable, "not ready: "+strings.Join(notReady, ", ")+"\n"+strings.Join(lines, "")+revisionLines(rd.Manifests))
		return
	}
	reply(w, http.StatusOK, "ok: "+plural.Count(len(apps), "app")+" ready\n"+strings.Join(lines, "")+revisionLines(rd.Manifests))
}

// revisionLines says which revision of the manifests runs and which was
// last rejected, when paddock knows (a git work tree, a git-sync or
// ConfigMap link): what a GitOps operator asks a probe next. Readiness
// does not depend on them.
func revisionLines(m supervisor.ManifestsStatus) string {
	var b strings.Builder
	if !m.Revision.IsZero() {
		fmt.Fprintf(&b, "revision: %s %s", m.Revision.Kind, m.Revision.ID)
		if mod := m.Revision.ModifiedText(); mod != "" {
			fmt.Fprintf(&b, " (modified: %s)", mod)
		}
		b.WriteString("\n")
	}
	if rj := m.Rejected; rj != nil {
		fmt.Fprintf(&b, "rejected: %s %s: %s\n", rj.Revision.Kind, rj.Revision.ID, rj.Error)
	}
	return b.String()
}

// askedApps returns the apps named by the request's app parameters, nil
// when there is none.
func askedApps(r *http.Request) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range r.URL.Query()["app"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}

// reply writes a plain-text answer that no cache keeps.
func reply(w http.ResponseWriter, code int, body string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
