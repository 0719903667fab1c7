package supervisor

import (
	"context"
	"fmt"

	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/internal/sysctl"
	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/netshare"
)

// This file holds the application of a manifest set: its sockets bound,
// its apps made the desired state.

// Apply makes set the desired state and returns how it differs from the
// previous one. Workers are started, stopped and replaced by the next plan.
// It fails when a new listening address cannot be bound (the errors name
// the manifest lines, see manifest.Errors; nothing is changed then), or
// when Run is not running (ctx).
//
// The revision that runs (Status.Manifests) stays what it was: Reload
// applies the revision it read with the set.
func (s *Supervisor) Apply(ctx context.Context, set *manifest.Set) ([]manifest.Change, error) {
	var changes []manifest.Change
	var applyErr error
	if err := s.do(ctx, func(o *owner) { changes, applyErr = o.apply(set, o.revision) }); err != nil {
		return nil, err
	}
	return changes, applyErr
}

// applyRevision is Apply of set read at revision rev: a failure is
// recorded as rev rejected (by reportReloadFailure), a success as rev
// applied.
func (s *Supervisor) applyRevision(ctx context.Context, set *manifest.Set, rev revision.Revision) ([]manifest.Change, error) {
	var changes []manifest.Change
	var applyErr error
	if err := s.do(ctx, func(o *owner) { changes, applyErr = o.apply(set, rev) }); err != nil {
		return nil, err
	}
	return changes, applyErr
}

// apply makes set, read at revision rev, the desired state (see Apply)
// and reports what changed; its events carry rev.
func (o *owner) apply(set *manifest.Set, rev revision.Revision) ([]manifest.Change, error) {
	if err := o.bind(set); err != nil {
		return nil, err
	}
	first := o.set == nil
	// The generations running now may have proved themselves since the
	// last turn of the loop: before they are replaced, they count.
	o.noteSettled(o.clock.Now())
	changes := o.effectiveChanges(set)
	for _, name := range o.dropStaleOverrides(set) {
		o.opts.Logger.Info("the manifest's instances changed: the runtime scale override is dropped", "app", name)
	}
	o.rememberRemovedDeps(set)
	o.set = set
	o.configureLogs(set)
	for name := range o.specs {
		if _, ok := set.Apps[name]; !ok {
			delete(o.specs, name)
			delete(o.rollingOut, name)
		}
	}
	for _, a := range set.Apps {
		o.setSpec(a)
	}
	o.forgetExits()
	o.forgetReleases()
	if w := DescriptorWarning(set); w != "" && (first || len(changes) > 0) {
		o.opts.Logger.Warn(w)
	}
	switch {
	case first:
		o.emit(Event{Type: EventApply, Revision: rev.ID, Detail: plural.Count(len(set.Apps), "app") + ", " + plural.Count(set.Workers(), "worker") + modifiedSuffix(rev)})
	case len(changes) == 0:
		o.opts.Logger.Debug("reload: manifests unchanged")
	default:
		for _, c := range changes {
			ev := Event{Type: EventReload, App: c.App, Revision: rev.ID, Detail: c.String() + modifiedSuffix(rev)}
			if a := set.Apps[c.App]; a != nil {
				ev.Generation = o.specs[c.App].Generation
			}
			o.emit(ev)
		}
	}
	o.noteApplied(rev, changes)
	return changes, nil
}

// bind takes the sockets of every address in set, binding those not
// bound yet, and drops the previous set's hold on its own. If any address
// cannot be bound, nothing changes and the errors name the manifest lines.
// An address no longer listed stays open while workers use it.
func (o *owner) bind(set *manifest.Set) error {
	next, reuseport, err := o.acquire(set)
	if err != nil {
		return err
	}
	held := map[*netshare.Socket]bool{}
	for _, socks := range o.appSockets {
		for _, sock := range socks {
			held[sock] = true
			sock.Release()
		}
	}
	o.appSockets = next
	// Sockets opened on demand for an app that is gone close once the
	// workers using them are gone too (releaseIdleHandles).
	for name, socks := range next {
		for _, sock := range socks {
			if !held[sock] { // newly bound
				o.opts.Logger.Info("listening", "app", name, "listen", sock.Listen.Raw, "address", sock.Addr.String())
				if sock.Replaced {
					o.opts.Logger.Info("replaced a stale socket file nothing listened on", "app", name, "path", sock.Listen.Address)
				}
			}
		}
	}
	if reuseport && !o.migration {
		o.migration = true
		o.enableMigration()
	}
	return nil
}

// acquire takes a reference to the socket of every address in set, by
// app in `listen:` order, binding those not bound yet, and says whether
// an app uses schedulingPolicy reuseport. If any address cannot be bound,
// it releases what it took and the errors name the manifest lines.
func (o *owner) acquire(set *manifest.Set) (map[string][]*netshare.Socket, bool, error) {
	next := map[string][]*netshare.Socket{}
	var errs []error
	reuseport := false
	for _, name := range set.Names() {
		a := set.Apps[name]
		for _, ln := range a.Listen {
			rp := a.SchedulingPolicy == "reuseport"
			reuseport = reuseport || rp
			sock, err := o.pool.Acquire(ln, rp, fmt.Sprintf("%s[%d]", name, ln.Index))
			if err != nil {
				key := fmt.Sprintf("listen[%d]", ln.Index)
				pos, ok := a.Pos[key]
				if !ok {
					pos = a.Source
				}
				errs = append(errs, &manifest.FieldError{Pos: pos, Field: "apps." + name + "." + key, Msg: err.Error(), Err: err})
				continue
			}
			next[name] = append(next[name], sock)
		}
	}
	if len(errs) > 0 {
		for _, socks := range next {
			for _, sock := range socks {
				sock.Release()
			}
		}
		return nil, false, manifest.Join(errs)
	}
	return next, reuseport, nil
}

// enableMigration turns net.ipv4.tcp_migrate_req on, unless
// Options.NoSysctl forbids it, and warns when it stays off.
func (o *owner) enableMigration() {
	const warning = "connections queued on a retiring worker's SO_REUSEPORT socket may be reset"
	if !o.opts.NoSysctl {
		if _, err := sysctl.EnableMigration(o.opts.Logger); err != nil {
			o.opts.Logger.Warn(warning, "err", err)
		}
		return
	}
	on, err := sysctl.Migration()
	switch {
	case err != nil:
		o.opts.Logger.Warn(warning, "err", err)
	case !on:
		o.opts.Logger.Warn(warning+": net.ipv4.tcp_migrate_req is 0 and --sysctl=false forbids paddock to turn it on",
			"sysctl", "net.ipv4.tcp_migrate_req")
	}
}

// Listeners returns the addresses each app listens on, as bound (the port
// chosen for port 0 included).
func (s *Supervisor) Listeners(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.do(ctx, func(o *owner) {
		for name, socks := range o.appSockets {
			for _, sock := range socks {
				out[name] = append(out[name], sock.Addr.String())
			}
		}
	})
	return out, err
}
