package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/internal/watch"
	"github.com/paddock-sh/paddock/manifest"
)

// settleFactor is the settle time of a reload in debounce intervals (see
// Reload): 2s with the default debounce.
const settleFactor = 10

// Reload reads the manifests again (Options.Load) and applies them. An
// invalid set is reported (every error logged, a reload-failed event) and
// the running set is kept untouched; so is a set that could not be read
// whole because a process still has one of its files open for writing
// (manifest.ErrOpenForWriting: "a writer still has FILE open; not
// applied"). It returns the changes applied, none when the manifests did
// not change.
//
// A set in which a file that declared apps now declares none (it is empty,
// has no apps, or is gone) while every app it declared would be removed is
// suspicious: it is what a writer that truncated the file and has not
// filled it yet leaves behind. Reload logs it at warn and applies it only
// once that file has stayed the same (size, modification time, content; or
// absent) and not open for writing for the settle time (10 × the reload
// debounce): it reads the manifests again then, and applies what it reads.
// A file emptied or deleted on purpose thus has its apps removed after the
// settle time. Reload blocks that long.
//
// Reloads are serialized: an older load is never applied after a newer
// one. Reload returns ctx.Err() when ctx is done and ErrNotRunning once Run
// is stopping, without waiting for a load in progress (see load).
func (s *Supervisor) Reload(ctx context.Context) ([]manifest.Change, error) {
	if s.opts.Load == nil {
		return nil, errors.New("reload: no manifest loader configured")
	}
	select {
	case s.reloadSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopping:
		return nil, ErrNotRunning
	}
	defer func() { <-s.reloadSem }()
	if s.notifiedReady.Load() {
		// Before the first READY=1, systemd is still waiting for the
		// start to finish: a reload then is part of it.
		s.sdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
		defer s.sdNotify("READY=1")
	}
	set, rev, err := s.load(ctx)
	if err == nil {
		set, rev, err = s.settle(ctx, set, rev)
	}
	var changes []manifest.Change
	if err == nil {
		changes, err = s.applyRevision(ctx, set, rev)
	}
	s.reportReload(ctx, rev, changes, err)
	return changes, err
}

// reportReload tells how a reload ended: Options.OnReload gets "failed",
// "unchanged" or "applied"; a rejected set is reported (unless the reload
// was given up: ctx done, or Run stopping), and the first reload that
// succeeds after one says the manifests are valid again. The holder of
// reloadSem calls it.
func (s *Supervisor) reportReload(ctx context.Context, rev revision.Revision, changes []manifest.Change, err error) {
	result := func(r string) {
		if s.opts.OnReload != nil {
			s.opts.OnReload(r)
		}
	}
	switch {
	case err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotRunning):
		result("failed")
		s.rejected = true
		s.reportReloadFailure(ctx, rev, err)
	case err != nil:
	case len(changes) == 0:
		result("unchanged")
	default:
		result("applied")
	}
	if err == nil && s.rejected {
		// The operator fixed what was rejected: say so, and what it did.
		s.rejected = false
		applied := "nothing changed from the running set"
		if len(changes) > 0 {
			applied = changesSummary(changes)
		}
		s.opts.Logger.Info("the manifests are valid again", "applied", applied)
	}
}

// changesSummary describes changes in one line: "web: updated (args) 2→3;
// api: added".
func changesSummary(changes []manifest.Change) string {
	parts := make([]string, len(changes))
	for i, c := range changes {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// load runs Options.Load in a goroutine of its own and returns its result,
// or ctx.Err() when ctx is done first, or ErrNotRunning once Run is
// stopping: a read that blocks (a filesystem that does not answer) never
// holds up a caller that gives up, nor the supervisor's shutdown. One load
// runs at a time: a load given up on keeps running until Load returns, and
// the next load waits for it; its result is dropped, never applied. Run
// waits for it, as it returns, no longer than readDrain.
func (s *Supervisor) load(ctx context.Context) (*manifest.Set, revision.Revision, error) {
	none := revision.Revision{}
	select {
	case <-s.stopping:
		return nil, none, ErrNotRunning
	default:
	}
	select {
	case s.loadSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, none, ctx.Err()
	case <-s.stopping:
		return nil, none, ErrNotRunning
	}
	type loaded struct {
		set *manifest.Set
		rev revision.Revision
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		defer func() { <-s.loadSlot }()
		set, rev, err := s.loadAt()
		done <- loaded{set, rev, err}
	}()
	select {
	case l := <-done:
		return l.set, l.rev, l.err
	case <-ctx.Done():
		return nil, none, ctx.Err()
	case <-s.stopping:
		return nil, none, ErrNotRunning
	}
}

// settleTime is how long a file must stay unchanged before a reload that
// empties or deletes it is applied.
func (s *Supervisor) settleTime() time.Duration {
	d := s.opts.ReloadDebounce
	if d <= 0 {
		d = watch.DefaultDebounce
	}
	return settleFactor * d
}

// settle returns set once no file in it is suspicious (see Reload), reading
// the manifests again after the settle time as long as one is and has
// changed since it was last read.
func (s *Supervisor) settle(ctx context.Context, set *manifest.Set, rev revision.Revision) (*manifest.Set, revision.Revision, error) {
	var prev *manifest.Set
	if err := s.do(ctx, func(o *owner) { prev = o.set }); err != nil {
		return nil, rev, err
	}
	settle := s.settleTime()
	seen := map[string]fileMark{} // each suspicious file as last read
	for {
		gone := vanished(prev, set)
		if len(gone) == 0 {
			return set, rev, nil
		}
		settled := true
		for _, file := range sortedKeys(gone) {
			mark := markOf(set, file)
			last, ok := seen[file]
			if ok && last.same(mark) {
				continue
			}
			settled = false
			seen[file] = mark
			apps := strings.Join(gone[file], ", ")
			switch {
			case ok:
				s.opts.Logger.Info("a manifest file that declares no app changed again; waiting for it to settle",
					"file", file, "settle", settle.String())
			case mark.present:
				s.opts.Logger.Warn(fmt.Sprintf("%s declared %s and now declares no app: applied once it has been closed and unchanged for %s",
					file, apps, settle), "file", file, "apps", apps)
			default:
				s.opts.Logger.Warn(fmt.Sprintf("%s declared %s and is gone: applied once it has stayed gone for %s",
					file, apps, settle), "file", file, "apps", apps)
			}
		}
		if settled {
			for _, file := range sortedKeys(gone) {
				s.opts.Logger.Info("a manifest file stayed without apps for the settle time: its apps are removed",
					"file", file, "apps", strings.Join(gone[file], ", "), "settle", settle.String())
			}
			return set, rev, nil
		}
		timer := s.opts.clock.NewTimer(settle)
		select {
		case <-timer.C():
		case <-ctx.Done():
			timer.Stop()
			return nil, rev, ctx.Err()
		case <-s.stopping:
			timer.Stop()
			return nil, rev, ErrNotRunning
		}
		next, nextRev, err := s.load(ctx)
		if err != nil {
			return nil, nextRev, err
		}
		set, rev = next, nextRev
	}
}

// fileMark is what a set says of one manifest file: absent, or read with
// state.
type fileMark struct {
	present bool
	state   manifest.FileState
}

func (m fileMark) same(o fileMark) bool {
	return m.present == o.present && (!m.present || m.state.Same(o.state))
}

// markOf returns what set says of file.
func markOf(set *manifest.Set, file string) fileMark {
	for _, f := range set.Files {
		if f.Path == file {
			return fileMark{present: true, state: f}
		}
	}
	return fileMark{}
}

// vanished returns, by file, the apps of prev whose file declares no app
// in next while none of them is in next either: files that were emptied,
// lost their apps, or are gone.
func vanished(prev, next *manifest.Set) map[string][]string {
	if prev == nil {
		return nil
	}
	declared := map[string][]string{}
	for _, name := range prev.Names() {
		f := prev.Apps[name].Source.File
		declared[f] = append(declared[f], name)
	}
	declaring := map[string]bool{}
	for _, a := range next.Apps {
		declaring[a.Source.File] = true
	}
	out := map[string][]string{}
	for f, names := range declared {
		if declaring[f] {
			continue
		}
		kept := false
		for _, n := range names {
			if _, ok := next.Apps[n]; ok {
				kept = true
			}
		}
		if !kept {
			out[f] = names
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// reportReloadFailure logs every error of a rejected set and emits
// reload-failed. A set not read because a writer still had a file open is
// told as such.
func (s *Supervisor) reportReloadFailure(ctx context.Context, rev revision.Revision, err error) {
	errs := manifest.Errors(err)
	detail := fmt.Sprintf("%s; the running set is kept; first: %v", plural.Count(len(errs), "error"), errs[0])
	if !rev.IsZero() {
		detail = "revision " + rev.ID + " rejected: " + detail
	}
	if manifest.IsOpenForWriting(err) {
		var busy []string
		for _, e := range errs {
			if errors.Is(e, manifest.ErrOpenForWriting) {
				busy = append(busy, e.Error())
			}
		}
		detail = strings.Join(busy, "; ") + "; not applied; the running set is kept"
		s.opts.Logger.Warn("reload not applied: " + strings.Join(busy, "; "))
		for _, e := range errs {
			if !errors.Is(e, manifest.ErrOpenForWriting) {
				s.opts.Logger.Error("reload rejected", "err", e.Error())
			}
		}
	} else {
		for _, e := range errs {
			s.opts.Logger.Error("reload rejected", "err", e.Error())
		}
	}
	if !rev.IsZero() && manifest.IsOpenForWriting(err) {
		detail = "revision " + rev.ID + ": " + detail
	}
	_ = s.do(ctx, func(o *owner) {
		o.noteRejected(rev, errs)
		o.emit(Event{Type: EventReloadFailed, Revision: rev.ID, Detail: detail + modifiedSuffix(rev)})
	})
}

// RequestReload asks for a reload without waiting for it; requests made
// while one is pending are merged. It never blocks.
func (s *Supervisor) RequestReload() {
	select {
	case s.reloadRequests <- struct{}{}:
	default:
	}
}

// reloader carries out reload requests until ctx is done. Once the
// watcher is in place it reloads once, then emits a watching event.
func (s *Supervisor) reloader(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.reloadRequests:
			_, _ = s.Reload(ctx)
		case <-s.watching:
			_, _ = s.Reload(ctx)
			detail := strings.Join(s.opts.Watch, ", ")
			_ = s.do(ctx, func(o *owner) { o.emit(Event{Type: EventWatching, Detail: detail}) })
		}
	}
}

// markStopping tells reloads that Run is stopping. It may be called more
// than once.
func (s *Supervisor) markStopping() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// waitReaders waits, for no longer than bound in all, for the watcher to
// return (watcherDone closed; nil: there is none) and for a load in
// progress to end; then no load starts any more. A read that blocks on a
// filesystem that does not answer is left behind, logged.
func (s *Supervisor) waitReaders(watcherDone <-chan struct{}, bound time.Duration) {
	timer := time.NewTimer(bound)
	defer timer.Stop()
	if watcherDone != nil {
		select {
		case <-watcherDone:
		case <-timer.C:
			s.opts.Logger.Warn("the manifest watcher has not returned (a filesystem that does not answer?); not waiting for it", "waited", bound.String())
			return
		}
	}
	select {
	case s.loadSlot <- struct{}{}: // kept: no load starts from now on
	case <-timer.C:
		s.opts.Logger.Warn("a manifest read has not returned (a filesystem that does not answer?); not waiting for it", "waited", bound.String())
	}
}
