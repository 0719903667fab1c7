package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// needShell fails the test when shell is not installed (make test-deps
// installs zsh and fish), or skips it when PADDOCK_SKIP_SHELLS=1 says to.
func needShell(t *testing.T, shell string) {
	t.Helper()
	if _, err := exec.LookPath(shell); err != nil {
		if os.Getenv("PADDOCK_SKIP_SHELLS") == "1" {
			t.Skipf("%s is not installed and PADDOCK_SKIP_SHELLS=1: its completion test skips", shell)
		}
		t.Fatalf("%s is not installed (make test-deps installs it; Debian: apt-get install %s): its completion test needs it; PADDOCK_SKIP_SHELLS=1 skips it", shell, shell)
	}
}

// completionCase is a command line to complete (the last of args is the
// word under the cursor), with $PADDOCK_SOCKET at sock, and the words a
// shell must offer for it, sorted.
type completionCase struct {
	name string
	sock string
	args []string
	want []string
}

// completionCases are the cases every completion test runs (`paddock
// __complete` and each shell): apps and workers from the supervisor on
// $PADDOCK_SOCKET or --socket, nothing when no supervisor answers, a flag's
// values, signals, commands. It starts the supervisor they ask.
func completionCases(t *testing.T) []completionCase {
	sock := socketPath(t)
	startWithSocket(t, sock, writeManifest(t, twoApps))
	web := waitWorkers(t, sock, "web", 2)
	waitWorkers(t, sock, "api", 1)
	var webIDs []string
	for id := range web {
		webIDs = append(webIDs, fmt.Sprintf("web/%d", id))
	}
	slices.Sort(webIDs)
	nobody := filepath.Join(t.TempDir(), "nobody.sock")
	return []completionCase{
		{"scale", sock, []string{"scale", ""}, []string{"api", "web"}},
		{"restart", sock, []string{"restart", "w"}, []string{"web"}},
		{"send", sock, []string{"send", ""}, []string{"api", "web"}},
		{"signal", sock, []string{"signal", ""}, []string{"api", "web"}},
		{"signal's signal", sock, []string{"signal", "web", "US"}, []string{"USR1", "USR2"}},
		{"logs", sock, []string{"logs", "-f", ""}, []string{"api", "web"}},
		{"logs workers", sock, []string{"logs", "web/"}, webIDs},
		{"signal workers", sock, []string{"signal", "web/"}, webIDs},
		{"events --app", sock, []string{"events", "--app", ""}, []string{"api", "web"}},
		{"--socket", nobody, []string{"logs", "--socket", sock, ""}, []string{"api", "web"}},
		{"no supervisor", nobody, []string{"logs", ""}, nil},
		{"status -o", sock, []string{"status", "-o", ""}, []string{"json", "wide", "yaml"}},
		{"commands", sock, []string{"st"}, []string{"status", "stop"}},
	}
}

// completionScript writes `paddock completion SHELL` to a file and returns
// its path.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	out, errOut, code := cli(t, socketPath(t), "completion", shell)
	if code != 0 {
		t.Fatalf("completion %s: exit %d %s", shell, code, errOut)
	}
	script := filepath.Join(t.TempDir(), "paddock."+shell)
	if err := testkit.WriteFile(script, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return script
}

// shellEnv is the environment of a shell completing paddock: paddock on
// $PATH (the scripts run `paddock __complete`, by the name typed) and
// $PADDOCK_SOCKET at sock.
func shellEnv(sock string) []string {
	return append(os.Environ(), "PATH="+filepath.Dir(paddockBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		control.SocketEnv+"="+sock)
}

// TestCompletionFish sources `paddock completion fish` in a real fish and
// completes each case as Tab would (`complete -C`, fish's own way to ask
// for the completions of a command line).
func TestCompletionFish(t *testing.T) {
	t.Parallel()
	needShell(t, "fish")
	script := completionScript(t, "fish")
	for _, tt := range completionCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line := strings.Join(append([]string{"paddock"}, tt.args...), " ")
			cmd := exec.Command("fish", "--no-config", "-c", "source $argv[1]; complete -C $argv[2]", script, line)
			cmd.Env = shellEnv(tt.sock)
			out, errOut, code := runCommand(t, cmd)
			if code != 0 {
				t.Fatalf("fish: exit %d: %s", code, errOut)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if w, _, _ := strings.Cut(l, "\t"); w != "" {
					got = append(got, w)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("fish completes %q to %q, want %q\n%s", line, got, tt.want, out)
			}
		})
	}
}

// TestCompletionZsh sources `paddock completion zsh` in a real interactive
// zsh, with its completion system (compinit), in a tmux pane, types each
// case's command line and Tab, and reads what zsh shows: the word it
// inserted when one alone fits, or the list it offers. A case that offers
// nothing is followed by a marker typed after Tab: once the marker shows,
// zsh has handled the Tab, and the line must be as typed, with no list.
func TestCompletionZsh(t *testing.T) {
	t.Parallel()
	needShell(t, "zsh")
	needTmux(t)
	script := completionScript(t, "zsh")
	for _, tt := range completionCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			z := startZsh(t, tt.sock, script)
			typed := "paddock " + strings.Join(tt.args, " ")
			z.tmux("send-keys", "-l", typed)
			z.tmux("send-keys", "Tab")
			if tt.want == nil {
				z.tmux("send-keys", "-l", "#MARK")
				z.waitScreen("zsh to take the Tab", `(?m)^Z> .*#MARK\s*$`)
				lines := screenLines(z.screen())
				if len(lines) != 1 || lines[0] != "Z> "+typed+"#MARK" {
					t.Errorf("zsh completed %q to\n%s\nwant nothing", typed, strings.Join(lines, "\n"))
				}
				return
			}
			var got []string
			var screen string
			defer func() {
				if t.Failed() {
					t.Logf("zsh offered %q; the screen:\n%s", got, screen)
				}
			}()
			testkit.WaitFor(t, fmt.Sprintf("zsh to offer %q for %q", tt.want, typed), func() bool {
				screen = z.screen()
				got = zshOffered(screen, typed)
				return slices.Equal(got, tt.want)
			})
		})
	}
}

// startZsh runs an interactive zsh (no startup files) in a tmux pane of
// its own, with prompt "Z> ", compinit and script loaded, the screen
// cleared, and the list shown at the first Tab also when zsh inserts the
// candidates' common prefix (no listambiguous).
func startZsh(t *testing.T, sock, script string) *tmuxPane {
	t.Helper()
	dir := t.TempDir()
	z := &tmuxPane{t: t, sock: filepath.Join(dir, "tmux.sock"), dir: dir}
	conf := filepath.Join(dir, "tmux.conf")
	if err := testkit.WriteFile(conf, []byte("set -g status off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// env, not tmux's -e: the pane's PATH would be the tmux server's.
	cmd := []string{"-f", conf, "new-session", "-d", "-x", "160", "-y", "40", "env"}
	for _, e := range shellEnv(sock) {
		if strings.HasPrefix(e, "PATH=") || strings.HasPrefix(e, control.SocketEnv+"=") {
			cmd = append(cmd, e)
		}
	}
	z.tmux(append(cmd, "zsh", "-f")...)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", z.sock, "kill-server").Run() })
	z.tmux("send-keys", "-l", fmt.Sprintf("autoload -U compinit && compinit -u -D && source '%s' && unsetopt listambiguous && PS1='Z> ' && clear", script))
	z.tmux("send-keys", "Enter")
	z.waitScreen("zsh's prompt", `^Z> \s*$`)
	return z
}

// screenLines returns a screen's lines up to its last non-empty one, each
// without trailing blanks.
func screenLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// zshOffered reads a zsh screen after Tab on the line typed: the words of
// the list below the line (with descriptions, "word -- description", the
// words that share one on a line; without, words in columns), or, with no
// list, the word zsh inserted in place of the last one typed. Sorted.
func zshOffered(screen, typed string) []string {
	lines := screenLines(screen)
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Z> ") {
		return nil
	}
	var words []string
	for _, l := range lines[1:] {
		// Words with the same description share a line: "web/3  web/2  -- running".
		w, _, _ := strings.Cut(l, " -- ")
		words = append(words, strings.Fields(w)...)
	}
	if len(words) == 0 {
		line := strings.TrimPrefix(lines[0], "Z> ")
		if line == strings.TrimRight(typed, " ") || !strings.HasPrefix(line, typed[:strings.LastIndex(typed, " ")+1]) {
			return nil
		}
		f := strings.Fields(line)
		words = f[len(f)-1:]
	}
	slices.Sort(words)
	return words
}
