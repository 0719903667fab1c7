package control

// The request handlers other than the streams (stream.go). Each returns
// an error instead of answering it: statusOf picks the status.

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/paddock-sh/paddock/internal/supervisor"
	"golang.org/x/sys/unix"
)

// noEndpoint answers a method and path the API does not have.
func noEndpoint(_ http.ResponseWriter, r *http.Request) error {
	return fmt.Errorf("%w: %s %s (see docs/api.md)", errNoEndpoint, r.Method, r.URL.Path)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	st, err := s.Supervisor.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, StatusFrom(s.Info, st))
	return nil
}

// StatusFrom converts a supervisor status.
func StatusFrom(info SupervisorInfo, st supervisor.Status) StatusResponse {
	resp := StatusResponse{Supervisor: info, Apps: make([]App, 0, len(st.Apps)), Workers: make([]Worker, 0, len(st.Workers)),
		LostOutput: st.LostOutput, LogDropped: st.LogDropped, Manifests: ManifestsFrom(st.Manifests)}
	for _, a := range st.Apps {
		app := App{Name: a.Name, Instances: a.Instances, ManifestInstances: a.ManifestInstances, Override: a.Override,
			Running: a.Running, Ready: a.Ready, Generation: a.Generation, SchedulingPolicy: a.SchedulingPolicy,
			Silent: a.Silent, Listen: nonNil(a.Listen)}
		app.Waiting = a.Waiting
		if ro := a.Rollout; ro != nil {
			app.Rollout = &Rollout{Instances: ro.Instances, New: ro.New, NewReady: ro.NewReady, Old: ro.Old,
				Stalled: ro.Stalled, Summary: ro.String(), StalledWorker: ro.StalledWorker}
			if st := a.Stall; st != nil {
				app.Rollout.LastExit, app.Rollout.Lines = FromExit(st.Exit), st.Lines
			}
		}
		app.Critical = a.Critical
		if cl := a.CrashLoop; cl != nil {
			app.CrashLoop = &CrashLoop{Exits: cl.Exits, Window: cl.Window.String(), Since: cl.Since, LastExitCode: cl.LastCode,
				LastSignal: cl.LastSignal, LastStartFailed: cl.LastStartFailed, LastExitAt: cl.LastAt, Summary: cl.String()}
			if !cl.FailAt.IsZero() {
				t := cl.FailAt
				app.CrashLoop.FailAt = &t
			}
		}
		app.LastExit = FromExit(a.LastExit)
		if rb := a.RolledBack; rb != nil {
			app.RolledBack = &RolledBack{From: rb.From, To: rb.To, Reason: rb.Reason}
		}
		if u := a.Usage; u != nil {
			rss, cpu := u.RSS, roundPercent(u.CPUPercent)
			app.RSSBytes, app.CPUPercent = &rss, &cpu
		}
		resp.Apps = append(resp.Apps, app)
	}
	for _, wi := range st.Workers {
		wk := Worker{App: wi.App, ID: wi.ID, PID: wi.PID, State: wi.Phase.String(), Ready: wi.Ready,
			StartedAt: wi.StartedAt, Restarts: wi.Restarts, Generation: wi.Generation, Listen: nonNil(wi.Listen),
			HandedOut: wi.HandedOut, Status: wi.Status, HealthFailures: wi.HealthFailures, HealthAnswer: wi.HealthAnswer}
		if !wi.RestartAt.IsZero() {
			t := wi.RestartAt
			wk.RestartAt = &t
		}
		if u := wi.Usage; u != nil {
			rss, cpu, secs, procs := u.RSS, roundPercent(u.CPUPercent), u.CPUTime.Seconds(), u.Procs
			wk.RSSBytes, wk.CPUPercent, wk.CPUSeconds, wk.Processes = &rss, &cpu, &secs, &procs
		}
		resp.Workers = append(resp.Workers, wk)
	}
	for app, c := range st.HealthChecks {
		if resp.HealthChecks == nil {
			resp.HealthChecks = map[string]HealthCounts{}
		}
		resp.HealthChecks[app] = HealthCounts{Pass: c.Pass, Fail: c.Fail, Timeout: c.Timeout}
	}
	resp.Relay = relayFrom(st.Relay)
	return resp
}

// roundPercent rounds a CPU percentage to two decimals: the readings are
// not finer than that.
func roundPercent(p float64) float64 { return math.Round(p*100) / 100 }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) error {
	changes, err := s.Supervisor.Reload(r.Context())
	if err != nil {
		return withKind(errInvalidManifests, err)
	}
	writeJSON(w, http.StatusOK, ChangesResponse{Changes: fromChanges(changes)})
	return nil
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) error {
	var req DiffRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	paths := req.Paths
	if len(paths) == 0 {
		paths = s.Manifests
	}
	set, err := s.Load(paths)
	if err != nil {
		return withKind(errInvalidManifests, err)
	}
	changes, err := s.Supervisor.Diff(r.Context(), set)
	if err != nil {
		return err
	}
	rolledBack, err := s.Supervisor.Rollbacks(r.Context(), set)
	if err != nil {
		return err
	}
	resp := ChangesResponse{Changes: fromChanges(changes)}
	for _, name := range set.Names() {
		if rb, ok := rolledBack[name]; ok {
			resp.RolledBack = append(resp.RolledBack, RolledBack{App: name, From: rb.From, To: rb.To, Reason: rb.Reason})
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusAccepted, map[string]bool{"stopping": true})
	s.Logger.Info("graceful shutdown asked for through the control socket")
	s.Stop()
	return nil
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	var req ScaleRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Instances == nil {
		return badRequest(errors.New(`request body: "instances" is required`))
	}
	info, err := s.Supervisor.Scale(r.Context(), app, *req.Instances)
	if err != nil {
		// A count the supervisor refuses is the request's fault.
		return badRequest(err)
	}
	writeJSON(w, http.StatusOK, ScaleResponse{App: app, From: info.From, Instances: info.Instances,
		ManifestInstances: info.ManifestInstances, Override: info.Override})
	return nil
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	info, err := s.Supervisor.Restart(r.Context(), app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RestartResponse{App: app, Generation: info.Generation, Workers: info.Workers})
	return nil
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	var req SendRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Message) == 0 {
		return badRequest(errors.New(`request body: "message" is required`))
	}
	n, err := s.Supervisor.Send(r.Context(), app, req.Worker, req.Message)
	if err != nil && n == 0 {
		return err
	}
	writeJSON(w, http.StatusOK, SendResponse{Delivered: n})
	return nil
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	var req SignalRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	sig, err := ParseSignal(req.Signal)
	if err != nil {
		return badRequest(err)
	}
	ids, err := s.Supervisor.Signal(r.Context(), app, req.Worker, sig)
	if err != nil && len(ids) == 0 {
		return err
	}
	writeJSON(w, http.StatusOK, SignalResponse{Workers: ids})
	return nil
}

// ParseSignal reads a signal as "HUP", "SIGHUP", "hup" or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d: out of range 1..64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
