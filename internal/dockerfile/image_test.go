package dockerfile

// The tests of paddock's own Dockerfile (at the repository's root): what no
// container engine can check here, read from the file itself, so that they
// fail when the file drifts from what docs/deploy-container.md promises.

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// root is the repository's root: the build context of `docker build .`.
const root = "../.."

// wantEntrypoint is the image's ENTRYPOINT, a contract of issue 16.
var wantEntrypoint = []string{"paddock", "run", "/etc/paddock"}

// readImage reads the repository's Dockerfile.
func readImage(t *testing.T) *File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("Dockerfile", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// finalStages returns the stages that are a target of their own: those no
// other stage builds FROM or copies --from.
func finalStages(f *File) []Stage {
	used := map[string]bool{}
	for _, s := range f.Stages {
		used[strings.ToLower(s.Base)] = true
		for _, in := range s.Find("COPY") {
			if from, ok := in.Flag("from"); ok {
				used[strings.ToLower(from)] = true
			}
		}
	}
	var out []Stage
	for _, s := range f.Stages {
		if s.Name == "" || !used[strings.ToLower(s.Name)] {
			out = append(out, s)
		}
	}
	return out
}

// TestImageTargets: `docker build .` gives the minimal image (the last
// stage, runtime) and `--target node` the one with Node; these two are the
// targets, each ending in paddock's ENTRYPOINT, exactly, run by a numeric
// user other than root, with paddock in a directory of its PATH and
// /etc/paddock where the manifests go.
func TestImageTargets(t *testing.T) {
	f := readImage(t)
	var names []string
	for _, s := range finalStages(f) {
		names = append(names, s.Name)
	}
	if !reflect.DeepEqual(names, []string{"node", "runtime"}) {
		t.Fatalf("final targets %q, want node then runtime (the last stage is what docker build . gives)", names)
	}
	if last := f.Stages[len(f.Stages)-1]; last.Name != "runtime" || !strings.Contains(last.Base, "distroless/static") {
		t.Errorf("the default target is %q FROM %s, want runtime FROM distroless/static", last.Name, last.Base)
	}
	if node, _ := f.Stage("node"); !strings.HasPrefix(node.Base, "node:") {
		t.Errorf("target node is FROM %s, want an official node image", node.Base)
	}
	for _, s := range finalStages(f) {
		t.Run(s.Name, func(t *testing.T) { checkTarget(t, f, s) })
	}
}

// checkTarget checks one final stage: entrypoint, user, PATH, paddock and
// /etc/paddock.
func checkTarget(t *testing.T, f *File, s Stage) {
	ep, ok := s.Last("ENTRYPOINT")
	args, exec := ep.Exec()
	if !ok || !exec || !reflect.DeepEqual(args, wantEntrypoint) {
		t.Errorf("line %d: ENTRYPOINT %s, want exactly %q in the exec form (paddock is PID 1, no shell between)", ep.Line, ep.Args, wantEntrypoint)
	}
	if cmd, ok := s.Last("CMD"); ok {
		t.Errorf("line %d: CMD %s would add arguments to paddock run /etc/paddock", cmd.Line, cmd.Args)
	}
	checkUser(t, s)
	if stop, ok := s.Last("STOPSIGNAL"); ok && stop.Args != "SIGTERM" {
		t.Errorf("line %d: STOPSIGNAL %s: paddock stops gracefully on SIGTERM", stop.Line, stop.Args)
	}
	checkCopies(t, f, s)
}

// checkUser checks that the stage runs as a numeric user other than root.
func checkUser(t *testing.T, s Stage) {
	user, ok := s.Last("USER")
	uid, gid, _ := strings.Cut(user.Args, ":")
	if n, err := strconv.Atoi(uid); !ok || err != nil || n <= 0 {
		t.Errorf("line %d: USER %q, want a numeric uid other than 0 (Kubernetes' runAsNonRoot can check only a number)", user.Line, user.Args)
	}
	if gid != "" {
		if _, err := strconv.Atoi(gid); err != nil {
			t.Errorf("line %d: USER %q: the group is not numeric", user.Line, user.Args)
		}
	}
}

// checkCopies checks that the stage copies the build stage's paddock into
// a directory of its PATH, and makes /etc/paddock.
func checkCopies(t *testing.T, f *File, s Stage) {
	pathDirs := envPath(s)
	if pathDirs == nil {
		t.Errorf("stage %s sets no ENV PATH: the ENTRYPOINT's paddock is found through it", s.Name)
	}
	dests := map[string]bool{}
	found := false
	for _, in := range s.Find("COPY") {
		fields := in.Fields()
		if len(fields) < 2 {
			t.Errorf("line %d: COPY %s: want sources and a destination", in.Line, in.Args)
			continue
		}
		dest := fields[len(fields)-1]
		dests[dest] = true
		if path.Base(dest) == "paddock" && slices.Contains(pathDirs, path.Dir(dest)) {
			found = true
			checkBinary(t, f, in, fields[:len(fields)-1])
		}
	}
	if !found {
		t.Errorf("stage %s copies paddock to none of its PATH directories %q", s.Name, pathDirs)
	}
	if !dests["/etc/paddock"] {
		t.Errorf("stage %s makes no /etc/paddock for the manifests", s.Name)
	}
}

// envPath returns the directories of the last ENV PATH=... of s.
func envPath(s Stage) []string {
	var dirs []string
	for _, in := range s.Find("ENV") {
		for _, kv := range in.Fields() {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				dirs = strings.Split(v, ":")
			}
		}
	}
	return dirs
}

// checkBinary checks that the paddock a final stage copies into its PATH
// comes from the build stage, and is the file its go build writes.
func checkBinary(t *testing.T, f *File, cp Instruction, srcs []string) {
	if from, _ := cp.Flag("from"); from != "build" || len(srcs) != 1 {
		t.Errorf("line %d: COPY %s: want paddock copied --from=build, one file", cp.Line, cp.Args)
		return
	}
	src := srcs[0]
	args, _ := goBuild(t, f)
	out := ""
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			out = args[i+1]
		}
	}
	if out != src {
		t.Errorf("line %d: COPY --from=build %s, but the build stage writes paddock to %q", cp.Line, src, out)
	}
}

// goBuild returns the arguments after `go build` of the build stage's RUN,
// and the environment it sets before them (CGO_ENABLED=0).
func goBuild(t *testing.T, f *File) (args, env []string) {
	t.Helper()
	build, ok := f.Stage("build")
	if !ok {
		t.Fatal("no stage called build")
	}
	for _, run := range build.Find("RUN") {
		for _, cmd := range strings.Split(run.Args, "&&") {
			words := Instruction{Args: cmd}.Fields()
			for i := 0; i+1 < len(words); i++ {
				if words[i] == "go" && words[i+1] == "build" {
					return words[i+2:], words[:i]
				}
				if !strings.Contains(words[i], "=") {
					break
				}
			}
		}
	}
	t.Fatal("the build stage runs no go build")
	return nil, nil
}

// TestStaticBuild builds paddock as the Dockerfile's build stage does (its
// go build flags and environment, read from the Dockerfile, VERSION
// stamped) and checks that the result runs on an image without libc: no
// program interpreter, no dynamic section, CGO_ENABLED=0 and -trimpath in
// its build information, the version stamped.
func TestStaticBuild(t *testing.T) {
	const version = "v0.0.0-imagetest"
	args, env := goBuild(t, readImage(t))
	bin := filepath.Join(t.TempDir(), "paddock")
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "${VERSION}", version)
		if i > 0 && args[i-1] == "-o" {
			args[i] = bin
		}
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("the build stage's go build runs with %q, without CGO_ENABLED=0", env)
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = root
	// The machine's environment, as the golang image's: cgo on (gcc is
	// there), so that only the Dockerfile's own CGO_ENABLED=0 makes it
	// static.
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=1"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %q: %v\n%s", args, err, out)
	}
	checkStatic(t, bin)
	info, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	// (With -trimpath, go records no -ldflags: the version is checked by
	// running the binary, -s by its missing symbol table.)
	for _, want := range []string{"\tbuild\tCGO_ENABLED=0\n", "\tbuild\t-trimpath=true\n"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("go version -m says no %q:\n%s", want, info)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "paddock "+version {
		t.Errorf("paddock version: %q, %v; want paddock %s", out, err, version)
	}
}

// checkStatic checks that the ELF file bin needs no dynamic loader, no
// shared library, and has no symbol table (-s).
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	e, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it needs a dynamic loader and libc", p.Type)
		}
	}
	if s := e.Section(".dynamic"); s != nil {
		t.Error("the binary has a .dynamic section")
	}
	if s := e.Section(".symtab"); s != nil {
		t.Error("the binary has a symbol table: built without -s")
	}
	if libs, _ := e.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %q", libs)
	}
}

// TestBuildContext: every source the Dockerfile COPYs from the build
// context exists and is not excluded by .dockerignore, and neither is any
// file `go build ./cmd/paddock` reads (the Go and embedded files of every
// package of this module it imports, go.mod, go.sum); every COPY --from
// names an earlier stage.
func TestBuildContext(t *testing.T) {
	f := readImage(t)
	ignore := dockerignore(t)
	seen := map[string]bool{}
	for _, s := range f.Stages {
		for _, in := range s.Find("COPY") {
			fields := in.Fields()
			if from, ok := in.Flag("from"); ok {
				if !seen[strings.ToLower(from)] {
					t.Errorf("line %d: COPY --from=%s: no earlier stage of that name", in.Line, from)
				}
				continue
			}
			for _, src := range fields[:max(len(fields)-1, 0)] {
				matches, _ := filepath.Glob(filepath.Join(root, src))
				if len(matches) == 0 {
					t.Errorf("line %d: COPY %s: no such file in the build context", in.Line, src)
				}
				if src != "." && excluded(t, ignore, path.Clean(src)) {
					t.Errorf("line %d: COPY %s: .dockerignore excludes it", in.Line, src)
				}
			}
		}
		seen[strings.ToLower(s.Name)] = true
	}
	for _, file := range buildInputs(t) {
		if excluded(t, ignore, file) {
			t.Errorf("%s is needed by go build ./cmd/paddock, and .dockerignore excludes it", file)
		}
	}
	// What it must exclude: what the builder has no use for and would be
	// slow or private to send.
	for _, file := range []string{".git/HEAD", "bin/paddock", "internal/supervisor/testdata/socketio/node_modules/x/package.json"} {
		if !excluded(t, ignore, file) {
			t.Errorf(".dockerignore does not exclude %s", file)
		}
	}
}

// dockerignore reads the repository's .dockerignore as Docker does.
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	r, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	patterns, err := ignorefile.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

// excluded reports whether .dockerignore keeps file (slash separated,
// relative to the context) out of the build context: it or a directory
// above it matches.
func excluded(t *testing.T, pm *patternmatcher.PatternMatcher, file string) bool {
	t.Helper()
	ex, err := pm.MatchesOrParentMatches(file)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// buildInputs returns the files of the context (relative, slash separated)
// that go build ./cmd/paddock reads: go.mod, go.sum, and the Go, embedded
// and other source files of every package of this module it imports.
func buildInputs(t *testing.T) []string {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles,SFiles,CgoFiles", "./cmd/paddock")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			Dir                                   string
			Module                                *struct{ Main bool }
			GoFiles, EmbedFiles, SFiles, CgoFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(abs, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range slices.Concat(p.GoFiles, p.EmbedFiles, p.SFiles, p.CgoFiles) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, name)))
		}
	}
	if len(files) < 10 {
		t.Fatalf("go list found only %q", files)
	}
	for _, file := range files {
		if _, err := os.Stat(filepath.Join(root, file)); errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("go list names %s, which is not there", file)
		}
	}
	return files
}

// TestDockerfileLint runs dockerfile-utils (npm; make npm-deps installs the
// version testdata/lint/package-lock.json pins) on the Dockerfile: it must
// find nothing. Skipped without node, as every Node test; failed when node
// is there and the linter is not installed.
func TestDockerfileLint(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs node to run dockerfile-utils")
	}
	dir, err := filepath.Abs("testdata/lint")
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "node_modules", "dockerfile-utils", "bin", "dockerfile-utils")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("dockerfile-utils is not installed (%v): run make npm-deps (npm ci in %s)", err, dir)
	}
	out, err := exec.Command(node, cli, "lint", filepath.Join(root, "Dockerfile")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("dockerfile-utils lint Dockerfile: %v\n%s", err, out)
	}
}
