package supervisor

import (
	"time"

	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/manifest"
)

// This file holds the revision of the manifests' source (Options.Revision):
// which one runs, which one was last rejected and why.

// revisionReads bounds how often a load is repeated because the revision
// changed while the files were read (a commit or a link swap in between).
const revisionReads = 3

// ManifestsStatus is the revision of the manifests that runs, and the one
// last rejected, as Status reports them.
type ManifestsStatus struct {
	// Revision is the revision of the set that runs (the zero Revision:
	// none found, or no Options.Revision); AppliedAt when it was applied.
	// A reload that changes no app but comes from another revision
	// applies that revision too.
	Revision  revision.Revision
	AppliedAt time.Time
	// Rejected is the last reload rejected since the last one applied,
	// nil when the last reload was applied.
	Rejected *RejectedRevision
}

// RejectedRevision is a reload that was not applied: the revision it read,
// when, and why.
type RejectedRevision struct {
	Revision revision.Revision
	At       time.Time
	// Error is the first error; Errors counts them all.
	Error  string
	Errors int
}

// readRevision returns the revision Options.Revision gives now, the zero
// Revision without one. An error is logged (once until it changes) and
// the revision it could still read is used.
func (s *Supervisor) readRevision() revision.Revision {
	if s.opts.Revision == nil {
		return revision.Revision{}
	}
	rev, err := s.opts.Revision()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if prev := s.revisionErr.Swap(&msg); err != nil && (prev == nil || *prev != msg) {
		s.opts.Logger.Warn("the manifests' revision cannot be read", "err", msg)
	}
	return rev
}

// loadAt runs Options.Load between two readings of the revision, again
// (up to revisionReads times) while they differ, so that the revision
// returned is the one whose files were read.
func (s *Supervisor) loadAt() (*manifest.Set, revision.Revision, error) {
	var (
		set *manifest.Set
		err error
		rev revision.Revision
	)
	for range revisionReads {
		rev = s.readRevision()
		set, err = s.opts.Load()
		if s.readRevision() == rev {
			break
		}
	}
	return set, rev, err
}

// noteApplied records rev as the revision that runs: a set from it was
// applied, with changes. A revision whose commit is the same but whose
// modified files differ (an edit in place) is recorded too. It emits the event that tells a new revision
// whose set changed no app (apply's reload events carry the revision
// otherwise).
func (o *owner) noteApplied(rev revision.Revision, changes []manifest.Change) {
	o.rejected = nil
	if rev == o.revision && !o.appliedAt.IsZero() {
		return
	}
	previous := o.revision
	o.revision, o.appliedAt = rev, o.clock.Now()
	if len(changes) == 0 && !previous.IsZero() && !rev.IsZero() {
		o.emit(Event{Type: EventReload, Revision: rev.ID, Detail: "revision " + rev.ID + " applied: no app changed" + modifiedSuffix(rev)})
	}
}

// modifiedSuffix is what events that carry rev add to their detail when
// the manifest files read differ from rev's commit (or that could not be
// told): " (modified: web.yaml)", " (modified: unknown)"; "" otherwise.
func modifiedSuffix(rev revision.Revision) string {
	if m := rev.ModifiedText(); m != "" {
		return " (modified: " + m + ")"
	}
	return ""
}

// noteRejected records a reload of rev that was rejected with errs.
func (o *owner) noteRejected(rev revision.Revision, errs []error) {
	r := &RejectedRevision{Revision: rev, At: o.clock.Now(), Errors: len(errs)}
	if len(errs) > 0 {
		r.Error = errs[0].Error()
	}
	o.rejected = r
}

// manifestsStatus returns the revisions for Status.
func (o *owner) manifestsStatus() ManifestsStatus {
	st := ManifestsStatus{Revision: o.revision, AppliedAt: o.appliedAt}
	if o.rejected != nil {
		r := *o.rejected
		st.Rejected = &r
	}
	return st
}
