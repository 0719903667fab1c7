package supervisor

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/paddock-sh/paddock/manifest"
	"github.com/paddock-sh/paddock/procs"
)

func TestWorkerSpec(t *testing.T) {
	t.Parallel()
	sock3, sock4, channel := os.NewFile(100, "sock3"), os.NewFile(101, "sock4"), os.NewFile(102, "channel")
	base := func() *manifest.App {
		return &manifest.App{Name: "web", Readiness: manifest.ReadinessOnline,
			Resolved: manifest.Resolved{Path: "/usr/bin/node", Argv: []string{"node", "app.js"}, Dir: "/srv/web"}}
	}
	// paddock's own parent may have given it a Node IPC channel
	// (NODE_CHANNEL_*): its variables are not the workers'.
	environ := []string{"PATH=/bin", "HOME=/root", "LISTEN_FDS=2", "NOTIFY_SOCKET=/run/systemd/notify", "GREETING=outer",
		"NODE_CHANNEL_FD=9", "NODE_CHANNEL_SERIALIZATION_MODE=advanced", "NODE_UNIQUE_ID=3"}
	tests := []struct {
		name    string
		app     func(*manifest.App)
		sockets []specSocket
		channel *os.File
		// env is the environment after environ's own entries that stay.
		env         []string
		extra       []*os.File
		listenNames []string
		credential  *syscall.Credential
	}{
		{name: "plain",
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7"}},
		{name: "app env over environ, sorted; paddock's names are paddock's",
			app: func(a *manifest.App) {
				a.Env = map[string]string{"GREETING": "inner", "B": "2", "A": "1", "PADDOCK_WORKER_ID": "999", "PADDOCK_APP": "x"}
			},
			env: []string{"PATH=/bin", "HOME=/root", "A=1", "B=2", "GREETING=inner", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7"}},
		{name: "notify readiness gets paddock's socket",
			app: func(a *manifest.App) { a.Readiness = manifest.ReadinessNotify },
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7", "NOTIFY_SOCKET=/tmp/paddock/notify"}},
		{name: "an app's own NOTIFY_SOCKET is kept, readiness online",
			app: func(a *manifest.App) { a.Env = map[string]string{"NOTIFY_SOCKET": "/mine"} },
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "NOTIFY_SOCKET=/mine", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7"}},
		{name: "sockets",
			sockets:     []specSocket{{File: sock3, Name: "web[0]"}, {File: sock4, Name: "web[1]"}},
			env:         []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7"},
			extra:       []*os.File{sock3, sock4},
			listenNames: []string{"web[0]", "web[1]"}},
		{name: "channel after the sockets",
			sockets: []specSocket{{File: sock3, Name: "web[0]"}},
			channel: channel,
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7",
				"NODE_CHANNEL_FD=4", "NODE_CHANNEL_SERIALIZATION_MODE=json", "NODE_UNIQUE_ID=7"},
			extra:       []*os.File{sock3, channel},
			listenNames: []string{"web[0]"}},
		{name: "channel alone",
			channel: channel,
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7",
				"NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json", "NODE_UNIQUE_ID=7"},
			extra: []*os.File{channel}},
		{name: "an app's own channel variables give way to paddock's",
			app: func(a *manifest.App) {
				a.Env = map[string]string{"NODE_CHANNEL_SERIALIZATION_MODE": "advanced", "NODE_UNIQUE_ID": "1", "NODE_CHANNEL_FD": "0"}
			},
			channel: channel,
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7",
				"NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json", "NODE_UNIQUE_ID=7"},
			extra: []*os.File{channel}},
		{name: "without a channel an app's own are kept",
			app: func(a *manifest.App) { a.Env = map[string]string{"NODE_UNIQUE_ID": "1"} },
			env: []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "NODE_UNIQUE_ID=1", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7"}},
		{name: "user",
			app: func(a *manifest.App) {
				a.Resolved.Credential = &manifest.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{4, 5}}
			},
			env:        []string{"PATH=/bin", "HOME=/root", "GREETING=outer", "PADDOCK_APP=web", "PADDOCK_WORKER_ID=7"},
			credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{4, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := base()
			if tt.app != nil {
				tt.app(app)
			}
			before := slices.Clone(environ)
			got := workerSpec(app, 7, environ, "/tmp/paddock/notify", tt.sockets, tt.channel)
			want := procs.Spec{Path: "/usr/bin/node", Argv: []string{"node", "app.js"}, Dir: "/srv/web",
				Env: tt.env, ExtraFiles: tt.extra, ListenNames: tt.listenNames, Credential: tt.credential}
			if got.Path != want.Path || !slices.Equal(got.Argv, want.Argv) || got.Dir != want.Dir {
				t.Errorf("program %s %v in %s, want %s %v in %s", got.Path, got.Argv, got.Dir, want.Path, want.Argv, want.Dir)
			}
			if !slices.Equal(got.Env, want.Env) {
				t.Errorf("env\n got %q\nwant %q", got.Env, want.Env)
			}
			if !slices.Equal(got.ExtraFiles, want.ExtraFiles) || !slices.Equal(got.ListenNames, want.ListenNames) {
				t.Errorf("files %v named %q, want %v named %q", got.ExtraFiles, got.ListenNames, want.ExtraFiles, want.ListenNames)
			}
			if (got.Credential == nil) != (want.Credential == nil) ||
				(got.Credential != nil && (got.Credential.Uid != want.Credential.Uid || got.Credential.Gid != want.Credential.Gid ||
					!slices.Equal(got.Credential.Groups, want.Credential.Groups))) {
				t.Errorf("credential %+v, want %+v", got.Credential, want.Credential)
			}
			if got.Stdout != nil || got.Stderr != nil {
				t.Error("workerSpec set the output, which is the caller's")
			}
			if !slices.Equal(environ, before) {
				t.Errorf("workerSpec changed environ: %q", environ)
			}
		})
	}
}

// TestStartErrorInExitEvent: the exit event of a worker that could not be
// started carries a *StartError naming the app, the worker and the
// program, which unwraps to the cause; the detail stays the words it was.
func TestStartErrorInExitEvent(t *testing.T) {
	t.Parallel()
	h := startFake(t, `
apps:
  gone:
    exec: $SELF
    backoff: {initial: 10ms, max: 40ms}
`, func(h *harness, o *Options) {
		o.processes.(*fakeProcesses).failStart[self(t)] = true
	})
	e := h.waitEvent("exit", isType(EventExit))
	se := e.StartErr
	if !e.StartFailed || se == nil || se.App != "gone" || se.Worker != e.Worker || se.Program != self(t) {
		t.Fatalf("exit event %+v: start error %+v, want app gone, worker %d, program %s", e, se, e.Worker, self(t))
	}
	var pe *procs.StartError
	if !errors.As(se, &pe) || !errors.Is(se, syscall.ENOENT) {
		t.Errorf("start error %v does not unwrap to the *procs.StartError and ENOENT", se)
	}
	if want := "start failed: " + pe.Error(); e.Detail != want {
		t.Errorf("detail %q, want %q", e.Detail, want)
	}
}
