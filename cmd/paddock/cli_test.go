package main

// Tests of the command line itself, through the real binary: suggestions,
// help, the old flag spellings, -o, and shell completion against a real
// supervisor and a real bash.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/testkit"
)

// TestCommandLineErrors: unknown commands and flags, bad -o values and
// wrong arguments are usage errors (exit 2) that say what was meant.
func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want []string // in stderr
	}{
		{nil, []string{"Usage:", "paddock [command]"}},
		{[]string{"stauts"}, []string{`unknown command "stauts" (did you mean "status"?)`, "Run 'paddock --help' for usage."}},
		{[]string{"lss"}, []string{`unknown command "lss" (did you mean "ls"?)`}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"status", "--jsno"}, []string{"paddock status: flag provided but not defined: --jsno (did you mean --json?)"}},
		{[]string{"logs", "web", "--folow"}, []string{"flag provided but not defined: --folow (did you mean --follow?)"}},
		{[]string{"restart", "web", "-wiat"}, []string{"flag provided but not defined: -wiat (did you mean --wait?)"}},
		{[]string{"status", "--frobnicate"}, []string{"flag provided but not defined: --frobnicate\n"}},
		{[]string{"status", "-o", "xml"}, []string{`paddock status: -o must be one of json, yaml, wide, got "xml"`}},
		{[]string{"events", "--output=table"}, []string{`-o must be one of json, yaml, wide, got "table"`}},
		{[]string{"status", "--json", "-o", "yaml"}, []string{"--json is -o json; it contradicts -o yaml"}},
		{[]string{"status", "extra"}, []string{`unknown command "extra" for "paddock status"`}},
		{[]string{"logs", "--lines", "many"}, []string{`invalid argument "many" for "--lines" flag`}},
		// "--" ends the flags: -3 is N, not a flag.
		{[]string{"scale", "--", "web", "-3"}, []string{`paddock scale: N must be a worker count >= 0, got "-3"`}},
		{[]string{"scale", "web", "-3"}, []string{"flag provided but not defined: -3\n"}},
		{[]string{"completion", "tcsh"}, []string{`invalid argument "tcsh" for "paddock completion"`}},
		{[]string{"help", "stauts"}, []string{`unknown command "stauts" (did you mean "status"?)`}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			out, errOut, code := cli(t, socketPath(t), tt.args...)
			if code != exitUsage || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestHelp: `paddock help COMMAND`, `paddock COMMAND --help` and the old
// single-dash spellings print the command's help on stdout and exit 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	statusHelp, _, code := cli(t, socketPath(t), "help", "status")
	if code != 0 || !strings.Contains(statusHelp, "paddock status [-o json|yaml|wide]") ||
		!strings.Contains(statusHelp, "status, ls") || !strings.Contains(statusHelp, "--output") {
		t.Fatalf("help status: exit %d\n%s", code, statusHelp)
	}
	for _, args := range [][]string{{"status", "--help"}, {"status", "-h"}, {"status", "-help"}, {"ls", "--help"}, {"help", "ls"}} {
		out, errOut, code := cli(t, socketPath(t), args...)
		if code != 0 || out != statusHelp || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
	}
}

// TestRootHelpAndVersion: paddock's own help and version, also in the old
// single-dash spellings.
func TestRootHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-help"}, {"-h"}} {
		out, _, code := cli(t, socketPath(t), args...)
		if code != 0 || !strings.Contains(out, "Steering a running supervisor:") || !strings.Contains(out, "Exit codes:") {
			t.Errorf("%s: exit %d\n%s", args, code, out)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		if out, _, code := cli(t, socketPath(t), args...); code != 0 || !strings.HasPrefix(out, "paddock ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: exit %d %q", args, code, out)
		}
	}
}

// twoApps runs web (2 workers) and api (1), sleepers both.
const twoApps = `
apps:
  web:
    exec: /bin/sleep
    args: [1000]
    instances: 2
    killTimeout: 2s
  api:
    exec: /bin/sleep
    args: [1000]
    killTimeout: 2s
`

// TestStatusOutputFormats: ls is status; -o json is --json (and -json,
// as Go's flag package read it); -o yaml has the same fields as the JSON;
// -o wide has the columns the table leaves out.
func TestStatusOutputFormats(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	startWithSocket(t, sock, writeManifest(t, twoApps))
	waitWorkers(t, sock, "web", 2)
	waitWorkers(t, sock, "api", 1)

	table := mustCLI(t, sock, "status")
	ls := mustCLI(t, sock, "ls")
	if firstLine(ls) != firstLine(table) || !strings.Contains(ls, "\nweb ") || !strings.Contains(ls, "\napi ") {
		t.Errorf("ls is not status:\n%s\nstatus:\n%s", ls, table)
	}

	var byJSON, byO, byDash map[string]any
	for _, c := range []struct {
		args []string
		into *map[string]any
	}{{[]string{"status", "--json"}, &byJSON}, {[]string{"status", "-o", "json"}, &byO}, {[]string{"status", "-json"}, &byDash}} {
		if err := json.Unmarshal([]byte(mustCLI(t, sock, c.args...)), c.into); err != nil {
			t.Fatalf("%s: %v", c.args, err)
		}
	}
	if !sameShape(byJSON, byO) || !sameShape(byJSON, byDash) {
		t.Errorf("--json, -o json and -json differ:\n%v\n%v\n%v", byJSON, byO, byDash)
	}

	out := mustCLI(t, sock, "status", "-o", "yaml")
	var byYAML map[string]any
	if err := yaml.Unmarshal([]byte(out), &byYAML); err != nil {
		t.Fatalf("-o yaml: %v\n%s", err, out)
	}
	if !sameShape(byJSON, byYAML) {
		t.Errorf("-o yaml has other fields than --json:\n%s\nJSON: %v", out, byJSON)
	}
	if strings.Contains(out, "{") || strings.Contains(out, `"web"`) || !strings.Contains(out, "- app: web\n") {
		t.Errorf("-o yaml is not plain block YAML:\n%s", out)
	}

	checkStatusWide(t, sock)
}

// checkStatusWide checks that status -o wide has its columns and a row
// per worker.
func checkStatusWide(t *testing.T, sock string) {
	t.Helper()
	wide := mustCLI(t, sock, "status", "-o", "wide")
	for _, col := range []string{"RUNNING", "CRITICAL", "CPU-TIME", "PROCS", "HANDED-OUT", "HEALTH"} {
		if !strings.Contains(wide, col) {
			t.Errorf("-o wide lacks %s:\n%s", col, wide)
		}
	}
	st := statusOf(t, sock)
	for _, w := range st.Workers {
		if !strings.Contains(wide, fmt.Sprintf("%s  %d ", w.App, w.ID)) {
			t.Errorf("-o wide lacks %s/%d:\n%s", w.App, w.ID, wide)
		}
	}
	t.Logf("\n%s", wide)
}

// TestEventsOutputFormats: events -o wide, -o yaml and -o json show the
// same event, every field of it.
func TestEventsOutputFormats(t *testing.T) {
	t.Parallel()
	sock := socketPath(t)
	startWithSocket(t, sock, writeManifest(t, twoApps))
	waitWorkers(t, sock, "api", 1)
	follow := func(args ...string) *testkit.Buffer {
		return printEvents(t, sock, append([]string{"--app", "api"}, args...)...)
	}
	wide, asYAML, asJSON := follow("-o", "wide"), follow("-o", "yaml"), follow("--json")
	// The followers are open once they show the scale event that follows.
	n := 1
	testkit.WaitFor(t, "the followers to follow", func() bool {
		n = 3 - n // 2, 1, 2...
		mustCLI(t, sock, "scale", "api", fmt.Sprint(n))
		return strings.Contains(wide.String(), " scale api") && strings.Contains(asYAML.String(), "type: scale") &&
			strings.Contains(asJSON.String(), `"type":"scale"`)
	})
	victim := 0
	for _, w := range statusOf(t, sock).Workers {
		if w.App == "api" && w.State == "running" {
			victim = w.ID
		}
	}
	mustCLI(t, sock, "signal", fmt.Sprintf("api/%d", victim), "KILL")
	testkit.WaitFor(t, "the exit in every format", func() bool {
		return strings.Contains(wide.String(), "signal=SIGKILL") && strings.Contains(asYAML.String(), "signal: SIGKILL") &&
			strings.Contains(asJSON.String(), `"signal":"SIGKILL"`)
	})
	var exit control.Event
	if err := json.Unmarshal([]byte(lineWith(asJSON.String(), `"signal":"SIGKILL"`)), &exit); err != nil {
		t.Fatal(err)
	}
	line := lineWith(wide.String(), "signal=SIGKILL")
	for _, want := range []string{fmt.Sprintf(" exit api/%d ", exit.Worker), fmt.Sprintf("pid=%d", exit.PID),
		"generation=" + exit.Generation, "exitCode=-1", "intended=false"} {
		if !strings.Contains(line, want) {
			t.Errorf("the wide exit line lacks %q: %s", want, line)
		}
	}
	if !slices.ContainsFunc(yamlDocuments(asYAML.String()), func(d map[string]any) bool {
		return d["type"] == "exit" && d["signal"] == "SIGKILL" && d["pid"] == exit.PID && d["exitCode"] == -1
	}) {
		t.Errorf("-o yaml lacks the exit as a document of its own:\n%s", asYAML.String())
	}
}

// printEvents runs `paddock events ARGS` against sock until the test
// ends and returns what it prints.
func printEvents(t *testing.T, sock string, args ...string) *testkit.Buffer {
	t.Helper()
	cmd := exec.Command(paddockBin, append([]string{"events", "--socket", sock}, args...)...)
	var out testkit.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &out
}

// lineWith returns the last line of s that holds sub, or "".
func lineWith(s, sub string) string {
	line := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			line = l
		}
	}
	return line
}

// yamlDocuments decodes the stream of YAML documents s.
func yamlDocuments(s string) []map[string]any {
	var docs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var d map[string]any
		if dec.Decode(&d) != nil {
			return docs
		}
		docs = append(docs, d)
	}
}

// TestCompletion completes against a real supervisor: `paddock __complete`
// (what every generated script runs) and the bash script itself, sourced
// in a real bash, offer the apps and APP/WORKER ids of the supervisor on
// $PADDOCK_SOCKET or --socket; with none answering, nothing.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, tt := range completionCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := cli(t, tt.sock, append([]string{"__complete"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got := completions(out); !slices.Equal(got, tt.want) {
				t.Errorf("__complete %q offers %q, want %q\n%s", tt.args, got, tt.want, out)
			}
			if got := bashComplete(t, tt.sock, tt.args...); !slices.Equal(got, tt.want) {
				t.Errorf("bash completes %q to %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}

// completions returns the words `paddock __complete` offers, sorted,
// without their descriptions and the closing directive line.
func completions(out string) []string {
	var words []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" || strings.HasPrefix(l, ":") {
			continue
		}
		w, _, _ := strings.Cut(l, "\t")
		words = append(words, w)
	}
	slices.Sort(words)
	return words
}

// bashComplete sources `paddock completion bash` in a real bash, as a
// user's shell does, completes "paddock ARGS" as Tab would (the last of
// args is the word under the cursor) with $PADDOCK_SOCKET at sock, and
// returns the words offered, sorted, without their descriptions.
func bashComplete(t *testing.T, sock string, args ...string) []string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "paddock.bash")
	out, errOut, code := cli(t, sock, "completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d %s", code, errOut)
	}
	testkit.WriteFile(script, []byte(out), 0o644)
	words := append([]string{paddockBin}, args...)
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = fmt.Sprintf("%q", w)
	}
	line := strings.Join(words, " ")
	// cobra's script uses the bash-completion package (as a Debian shell
	// has it); where the package is missing, a minimal stand-in for the one
	// function the script needs from it.
	prog := fmt.Sprintf(`if [ -r /usr/share/bash-completion/bash_completion ]; then
	source /usr/share/bash-completion/bash_completion
else
	_get_comp_words_by_ref() {
		cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cword=$COMP_CWORD
		words=("${COMP_WORDS[@]}")
	}
fi
source %q
COMP_WORDS=(%s)
COMP_CWORD=%d
COMP_LINE=%q
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
__start_paddock 2>/dev/null
printf '%%s\n' "${COMPREPLY[@]}"
`, script, strings.Join(quoted, " "), len(words)-1, line)
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Env = append(os.Environ(), control.SocketEnv+"="+sock)
	got, errOut, code := runCommand(t, cmd)
	if code != 0 {
		t.Fatalf("bash: exit %d: %s", code, errOut)
	}
	var offered []string
	for _, l := range strings.Split(got, "\n") {
		// With several words, bash shows each with its description:
		// "web   (2/2 ready)".
		if w := strings.Fields(l); len(w) > 0 {
			offered = append(offered, w[0])
		}
	}
	slices.Sort(offered)
	return offered
}

// TestCompletionScripts: each shell's script is printed, names paddock's
// completion function, and bash's parses.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{"bash": "__start_paddock", "zsh": "#compdef paddock", "fish": "complete -c paddock",
		"powershell": "Register-ArgumentCompleter"} {
		out, errOut, code := cli(t, socketPath(t), "completion", shell)
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d %q\n%.300s", shell, code, errOut, out)
		}
		if shell == "bash" {
			check := exec.Command("bash", "-n")
			check.Stdin = strings.NewReader(out)
			if b, err := check.CombinedOutput(); err != nil {
				t.Errorf("bash -n on the bash completion: %v\n%s", err, b)
			}
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// sameShape reports whether a and b, decoded JSON or YAML, have the same
// keys at every level (lists: the keys of their first elements), whatever
// the values (CPU and uptimes move between two reads).
func sameShape(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !sameShape(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		return len(a) == 0 || sameShape(a[0], b[0])
	}
	_, isMap := b.(map[string]any)
	_, isList := b.([]any)
	return !isMap && !isList
}
