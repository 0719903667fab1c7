package supervisor

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/manifest"
)

// revisions is a fake Options.Revision: it returns the revisions queued,
// then the last one for ever, and counts the reads. A queued "ID|FILES"
// is revision ID with FILES modified against it, "ID|?" one whose
// modified files could not be told.
type revisions struct {
	mu    sync.Mutex
	queue []string
	reads int
}

func (r *revisions) next() (revision.Revision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	id := r.queue[0]
	if len(r.queue) > 1 {
		r.queue = r.queue[1:]
	}
	id, modified, _ := strings.Cut(id, "|")
	if modified == "?" {
		return revision.Revision{ID: id, Kind: revision.KindGit, Source: "/repo", ModifiedUnknown: true}, nil
	}
	return revision.Revision{ID: id, Kind: revision.KindGit, Source: "/repo", Modified: modified}, nil
}

func (r *revisions) set(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = ids
}

// revisionHarness is a supervisor whose Options.Revision is revs and
// whose loads are counted.
type revisionHarness struct {
	*harness
	revs  *revisions
	loads int // by Options.Load: one load at a time (loadSlot)
}

const revisionValid = "apps:\n  web:\n    exec: $SELF\n    env: {PADDOCK_TEST_HELPER: serve}\n    instances: %s\n"

// reloadAt writes the manifest with instances n, makes ids the next
// revisions read, and reloads.
func (h *revisionHarness) reloadAt(n string, ids ...string) ([]manifest.Change, error) {
	h.write(strings.Replace(revisionValid, "%s", n, 1))
	h.revs.set(ids...)
	h.loads = 0
	return h.sup.Reload(context.Background())
}

func (h *revisionHarness) manifests() ManifestsStatus {
	h.t.Helper()
	st, err := h.sup.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Manifests
}

// startRevisionHarness starts a supervisor of one worker whose revisions
// come from a queue (revisions.next, first "aaa") and whose loads are
// counted.
func startRevisionHarness(t *testing.T) *revisionHarness {
	t.Helper()
	h := &revisionHarness{revs: &revisions{queue: []string{"aaa"}}}
	h.harness = startWith(t, strings.Replace(revisionValid, "%s", "1", 1), func(hh *harness, o *Options) {
		path := filepath.Join(hh.dir, "paddock.yaml")
		o.Load = func() (*manifest.Set, error) {
			h.loads++
			return manifest.Load([]string{path}, manifest.CurrentHost())
		}
		o.Revision = h.revs.next
	})
	h.waitWorkers("1 worker", running("web", 1))
	return h
}

// TestReloadRevision: the revision read with a set is the one applied,
// shown by Status and carried by the events; a rejected set records its
// revision and error, the applied one staying; a revision that changed
// while the files were read makes the load run again.
func TestReloadRevision(t *testing.T) {
	t.Parallel()
	h := startRevisionHarness(t)
	if m := h.manifests(); m.Revision.ID != "aaa" || m.AppliedAt.IsZero() || m.Rejected != nil {
		t.Fatalf("after Run: %+v", m)
	}
	h.waitEvent("apply with revision aaa", func(e Event) bool { return e.Type == EventApply && e.Revision == "aaa" })

	// The revision moves from bbb to ccc while the files are read: the
	// load runs again and ccc, read on both sides of the second load, is
	// the one applied.
	if _, err := h.reloadAt("2", "bbb", "ccc"); err != nil {
		t.Fatal(err)
	}
	if h.loads != 2 {
		t.Errorf("a revision that changed during the load: %d loads, want 2", h.loads)
	}
	if m := h.manifests(); m.Revision.ID != "ccc" {
		t.Fatalf("after a reload at ccc: %+v", m)
	}
	h.waitEvent("reload with revision ccc", func(e Event) bool { return e.Type == EventReload && e.App == "web" && e.Revision == "ccc" })

	checkRejectedThenFixed(t, h)
}

// TestReloadModifiedInPlace: a manifest edited in place (the same
// commit, Modified changed) is applied as any reload and Status shows the
// new Modified; a Modified that changes while the files are read makes
// the load run again; committing the edit (a new commit, nothing
// modified, no app changed) is applied with one event.
func TestReloadModifiedInPlace(t *testing.T) {
	t.Parallel()
	h := startRevisionHarness(t)
	steps := []struct {
		name      string
		instances string
		revs      []string
		changes   int
		loads     int
		want      revision.Revision
		detail    string // of the event for the revision (the app's, or none)
	}{
		{"edited in place", "2", []string{"aaa|paddock.yaml"}, 1, 1,
			revision.Revision{ID: "aaa", Modified: "paddock.yaml"}, "(modified: paddock.yaml)"},
		{"edited again while read", "3", []string{"aaa|paddock.yaml", "aaa|other.yaml,paddock.yaml"}, 1, 2,
			revision.Revision{ID: "aaa", Modified: "other.yaml,paddock.yaml"}, "(modified: other.yaml,paddock.yaml)"},
		{"could not tell", "3", []string{"aaa|?"}, 0, 1,
			revision.Revision{ID: "aaa", ModifiedUnknown: true}, ""},
		{"committed", "3", []string{"bbb"}, 0, 1,
			revision.Revision{ID: "bbb"}, "revision bbb applied: no app changed"},
	}
	for _, st := range steps {
		h.write(strings.Replace(revisionValid, "%s", st.instances, 1))
		h.revs.set(st.revs...)
		h.loads = 0
		ch, err := h.sup.Reload(context.Background())
		if err != nil || len(ch) != st.changes || h.loads != st.loads {
			t.Fatalf("%s: reload: %v, %v after %d loads, want %d changes after %d", st.name, ch, err, h.loads, st.changes, st.loads)
		}
		want := st.want
		want.Kind, want.Source = revision.KindGit, "/repo"
		if m := h.manifests(); m.Revision != want || m.Rejected != nil {
			t.Fatalf("%s: status %+v, want %+v", st.name, m, want)
		}
		if st.detail != "" {
			h.waitEvent(st.name, func(e Event) bool {
				return e.Type == EventReload && e.Revision == want.ID && strings.HasSuffix(e.Detail, st.detail)
			})
		}
	}
}

// checkRejectedThenFixed: an invalid set at ddd is recorded rejected while
// ccc runs; the running set at eee clears it, with one event.
func checkRejectedThenFixed(t *testing.T, h *revisionHarness) {
	t.Helper()
	if _, err := h.reloadAt("-1", "ddd"); err == nil {
		t.Fatal("an invalid set was applied")
	}
	m := h.manifests()
	if m.Revision.ID != "ccc" || m.Rejected == nil || m.Rejected.Revision.ID != "ddd" ||
		!strings.Contains(m.Rejected.Error, "apps.web.instances") || m.Rejected.Errors != 1 {
		t.Fatalf("after a rejected reload: %+v, rejected %+v", m, m.Rejected)
	}
	h.waitEvent("reload-failed with revision ddd", func(e Event) bool {
		return e.Type == EventReloadFailed && e.Revision == "ddd" && strings.HasPrefix(e.Detail, "revision ddd rejected: ")
	})

	// Fixed by a revision whose set is the running one: applied, the
	// rejection cleared, one reload event for the revision.
	if ch, err := h.reloadAt("2", "eee"); err != nil || len(ch) != 0 {
		t.Fatalf("reload of the running set at eee: %v, %v", ch, err)
	}
	if m := h.manifests(); m.Revision.ID != "eee" || m.Rejected != nil {
		t.Fatalf("after the fix: %+v", m)
	}
	// The same revision again: nothing more to say.
	if _, err := h.reloadAt("2", "eee"); err != nil {
		t.Fatal(err)
	}
	if n := h.countRevisionEvents("eee"); n != 1 {
		t.Fatalf("%d reload events for revision eee, want 1 (a reload of the same revision says nothing)", n)
	}
}

// countRevisionEvents counts the reload events without an app for rev
// emitted so far (emit calls OnEvent before the request that emitted
// returns).
func (h *harness) countRevisionEvents(rev string) int {
	n := 0
	for _, e := range h.drain() {
		if e.Type == EventReload && e.App == "" && e.Revision == rev {
			n++
		}
	}
	return n
}
