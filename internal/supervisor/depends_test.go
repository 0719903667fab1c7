package supervisor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-sh/paddock/manifest"
)

// appStatus returns the status of app, failing the test when it has none.
func appStatus(t *testing.T, st Status, app string) AppStatus {
	t.Helper()
	for _, a := range st.Apps {
		if a.Name == app {
			return a
		}
	}
	t.Fatalf("no app %s in status %+v", app, st.Apps)
	return AppStatus{}
}

// eventIndex returns the index in es of the first event that matches, or
// -1.
func eventIndex(es []Event, match func(Event) bool) int { return slices.IndexFunc(es, match) }

func isEvent(typ, app string) func(Event) bool {
	return func(e Event) bool { return e.Type == typ && e.App == app }
}

// TestDependantWaitsForAvailableDependency: web depends on db, whose worker
// becomes ready only when the test sends it SIGUSR1 (sd_notify). Until
// then web has no worker, status says why it waits, and a
// dependency-wait event said so; once db is ready and has stayed ready for
// its minReadyTime (1s, the default), web's workers start, a
// dependency-ready event says so, and paddock tells systemd it is ready
// only after they started.
func TestDependantWaitsForAvailableDependency(t *testing.T) {
	t.Parallel()
	var webForks atomic.Int32
	readyAfter := make(chan int32, 1)
	h := startWith(t, `
apps:
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve}
    dependsOn: [db]
  db:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: notify-on-usr1, READY_DIR: $DIR}
    readiness: notify
    readyTimeout: 1h
`, func(_ *harness, o *Options) {
		onEvent := o.OnEvent
		o.OnEvent = func(e Event) {
			if e.Type == EventFork && e.App == "web" {
				webForks.Add(1)
			}
			onEvent(e)
		}
		o.Notify = func(state string) {
			if state == "READY=1" {
				readyAfter <- webForks.Load()
			}
		}
	})
	wait := h.waitEvent("dependency-wait of web", isEvent(EventDependencyWait, "web"))
	if wait.Detail != "waiting for db: 0/1 available" {
		t.Errorf("dependency-wait detail %q, want %q", wait.Detail, "waiting for db: 0/1 available")
	}
	ws := h.waitWorkers("db running", func(ws []WorkerInfo) bool {
		return len(ws) == 1 && ws[0].App == "db" && ws[0].PID != 0
	})
	h.waitReady(ws) // its SIGUSR1 handler is in place
	st, err := h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := appStatus(t, st, "web").Waiting; got != "waiting for db: 0/1 available" {
		t.Errorf("status of web: waiting %q, want %q", got, "waiting for db: 0/1 available")
	}
	if got := appStatus(t, st, "db").Waiting; got != "" {
		t.Errorf("status of db: waiting %q, want none", got)
	}
	for _, w := range st.Workers {
		if w.App == "web" {
			t.Fatalf("web has worker %d while db is not ready", w.ID)
		}
	}

	if err := syscall.Kill(ws[0].PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitEvent("dependency-ready of web", isEvent(EventDependencyReady, "web"))
	h.waitWorkers("2 web workers and db", func(ws []WorkerInfo) bool {
		return len(live(ws, "web")) == 2 && len(live(ws, "db")) == 1
	})
	es := h.drain()
	dbReady, released := eventIndex(es, isEvent(EventReady, "db")), eventIndex(es, isEvent(EventDependencyReady, "web"))
	webFork := eventIndex(es, isEvent(EventFork, "web"))
	if dbReady < 0 || released < dbReady || webFork < released {
		t.Errorf("db ready at event %d, web released at %d, forked at %d; want them in this order:%s", dbReady, released, webFork, describe(es))
	}
	select {
	case n := <-readyAfter:
		if n != 2 {
			t.Errorf("READY=1 sent after %d forks of web, want 2: the set had not converged", n)
		}
	case <-time.After(patience):
		t.Fatal("no READY=1")
	}
	st, err = h.sup.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := appStatus(t, st, "web").Waiting; got != "" {
		t.Errorf("status of web once started: waiting %q, want none", got)
	}
}

// TestShutdownStopsDependantsFirst: web depends on api, api on db. A
// graceful stop stops web's workers first, api's once every web worker
// exited, then db's once api's exited.
func TestShutdownStopsDependantsFirst(t *testing.T) {
	t.Parallel()
	h := start(t, `
apps:
  db:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: $DIR}
  api:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: $DIR}
    dependsOn: [db]
  web:
    exec: $SELF
    instances: 2
    env: {PADDOCK_TEST_HELPER: serve, READY_DIR: $DIR}
    dependsOn: [api]
`)
	ws := h.waitWorkers("5 workers", func(ws []WorkerInfo) bool {
		return len(live(ws, "db")) == 1 && len(live(ws, "api")) == 2 && len(live(ws, "web")) == 2
	})
	h.waitReady(ws)
	if err := h.stop(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	es := h.drain()
	// Where each app's first stop and last exit are in the event order.
	firstStop, lastExit := map[string]int{}, map[string]int{}
	exits := 0
	for i, e := range es {
		switch e.Type {
		case EventStopping:
			if _, ok := firstStop[e.App]; !ok {
				firstStop[e.App] = i
			}
		case EventExit:
			exits++
			lastExit[e.App] = i
			if !e.Intended || e.ExitCode != 0 {
				t.Errorf("exit %+v, want intended with code 0", e)
			}
		}
	}
	if exits != 5 {
		t.Fatalf("%d exits, want 5:%s", exits, describe(es))
	}
	for _, pair := range [][2]string{{"web", "api"}, {"api", "db"}} {
		dependant, dependency := pair[0], pair[1]
		if firstStop[dependency] < lastExit[dependant] {
			t.Errorf("%s was stopped (event %d) before every worker of %s exited (event %d):%s",
				dependency, firstStop[dependency], dependant, lastExit[dependant], describe(es))
		}
	}
}

// TestShutdownDependencyKeepsItsKillTimeout: at shutdown web, which
// ignores SIGTERM, is killed after its own killTimeout (10s); only then is
// api, which web depends on, asked to stop, and its own killTimeout (3s)
// counts from then.
func TestShutdownDependencyKeepsItsKillTimeout(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: ignore-term}
    killTimeout: 10s
    dependsOn: [api]
  api:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: ignore-term}
    killTimeout: 3s
    minReadyTime: 0s
`, nil)
	h.forks(2)
	h.cancel()
	if st := h.waitEvent("stopping", isType(EventStopping)); st.App != "web" {
		t.Fatalf("first stopping: %s, want web", st.App)
	}
	if at, want := h.wakeAt(), fakeEpoch.Add(10*time.Second); !at.Equal(want) {
		t.Errorf("the loop wakes at %s, want at web's killTimeout, %s", at.Sub(fakeEpoch), want.Sub(fakeEpoch))
	}
	if e := h.drain(); slices.ContainsFunc(e, isEvent(EventStopping, "api")) {
		t.Fatalf("api stopped while web runs:%s", describe(e))
	}
	h.advance(10 * time.Second)
	h.waitEvent("web killed", isEvent(EventKill, "web"))
	h.waitEvent("web exits", isEvent(EventExit, "web"))
	h.waitEvent("api stopping", isEvent(EventStopping, "api"))
	if at, want := h.wakeAt(), fakeEpoch.Add(13*time.Second); !at.Equal(want) {
		t.Errorf("the loop wakes at %s, want at api's own killTimeout after its stop, %s", at.Sub(fakeEpoch), want.Sub(fakeEpoch))
	}
	h.advance(3 * time.Second)
	if err := h.stop(); !errors.Is(err, ErrStopTimeout) {
		t.Fatalf("Run returned %v, want ErrStopTimeout", err)
	}
}

// TestRemovedAppsStopDependantsFirst: a reload removes web and api, web
// depending on api. api's worker is stopped only once web's (which
// ignores SIGTERM until its killTimeout) has exited: the supervisor keeps
// the dependencies of removed apps.
func TestRemovedAppsStopDependantsFirst(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  web:
    exec: $SELF
    env: {PADDOCK_TEST_HELPER: ignore-term}
    killTimeout: 10s
    dependsOn: [api]
  api:
    exec: $SELF
    dependsOn: [db]
    minReadyTime: 0s
  db:
    exec: $SELF
    minReadyTime: 0s
`, nil)
	h.forks(3)
	h.apply(`
apps:
  db:
    exec: $SELF
    minReadyTime: 0s
`)
	h.waitEvent("web stopping", isEvent(EventStopping, "web"))
	if e := h.drain(); slices.ContainsFunc(e, isEvent(EventStopping, "api")) {
		t.Fatalf("api stopped while web runs:%s", describe(e))
	}
	h.advance(10 * time.Second)
	h.waitEvent("web exits", isEvent(EventExit, "web"))
	h.waitEvent("api stopping", isEvent(EventStopping, "api"))
	h.waitEvent("api exits", isEvent(EventExit, "api"))
	if e := h.drain(); slices.ContainsFunc(e, isEvent(EventStopping, "db")) {
		t.Errorf("db, still declared, was stopped:%s", describe(e))
	}
}

// TestDependsOnChangeKeepsWorkers: a reload that changes dependsOn alone
// replaces no worker and is reported as reconfigured.
func TestDependsOnChangeKeepsWorkers(t *testing.T) {
	t.Parallel()
	const manifestFmt = `
apps:
  web:
    exec: $SELF
    dependsOn: [%s]
  api:
    exec: $SELF
    minReadyTime: 0s
  db:
    exec: $SELF
    minReadyTime: 0s
`
	h := startFake(t, strings.ReplaceAll(manifestFmt, "%s", "api"), nil)
	h.forks(3)
	before := h.workers()
	set := load(t, h.dir, strings.ReplaceAll(manifestFmt, "%s", "api, db"))
	changes, err := h.sup.Apply(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Kind != manifest.ChangeReconfigured || changes[0].App != "web" {
		t.Errorf("changes %v, want web reconfigured", changes)
	}
	if after := h.workers(); summary(after) != summary(before) {
		t.Errorf("workers changed:\n%s\n→\n%s", summary(before), summary(after))
	}
}
