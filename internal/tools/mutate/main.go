// Command mutate checks that paddock's tests guard its promises: it plants
// each mutation of a documented list (mutations.yaml beside this file) in a
// temporary copy of the module, one at a time, runs the tests of the package
// that owns the mutated behaviour, and reports which mutations the tests
// catch and which survive.
//
// A mutation is a small, realistic bug chosen for the promise it breaks (a
// flipped condition, a dropped return, a wrong constant): an exact snippet
// of a file and its replacement. The snippet must occur exactly once in its
// file, or mutate fails before running anything, so the list cannot rot
// silently as the code changes.
//
// Usage (from anywhere in the checkout; make mutate runs it):
//
//	go run ./internal/tools/mutate [-run REGEX] [-list] [-keep] [-timeout D]
//
// The copy holds the files git tracks plus the untracked files it does not
// ignore, as they are on disk, so a dirty tree is checked as it is. Each
// mutation runs `go test -count=1 -failfast -vet=off PACKAGE` in the copy
// (no -race, for speed); a run that outlasts -timeout counts as caught and
// is reported as a timeout. The exit status is 0 when every mutation is
// caught, 1 when one survives, does not compile, or its snippet does not
// match, 2 on a usage error.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultTimeout bounds the tests of one mutation. The supervisor's tests
// take minutes on a loaded 2-CPU machine; a mutation that makes a test wait
// for a condition that never comes is caught by the test's own deadline
// (30-60 s) well before this.
const DefaultTimeout = 15 * time.Minute

// listPath is where the mutation list lives, relative to the module root.
const listPath = "internal/tools/mutate/mutations.yaml"

// Mutation is one planted bug.
type Mutation struct {
	// ID names the mutation in reports and for -run.
	ID string `yaml:"id"`
	// Package is the package whose tests must catch it, as go test takes
	// it ("./supervisor").
	Package string `yaml:"package"`
	// File is the mutated file, relative to the module root.
	File string `yaml:"file"`
	// Description names the promise the mutation breaks.
	Description string `yaml:"description"`
	// From is an exact snippet of File, which must occur in it exactly
	// once; To replaces it.
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// Outcome is what the tests made of one mutation.
type Outcome int

const (
	// Caught: a test failed.
	Caught Outcome = iota
	// TimedOut: the tests ran past the timeout; counted as caught.
	TimedOut
	// Survived: every test passed with the mutation in place.
	Survived
	// BuildFailed: the mutated package or its tests did not compile; the
	// mutation says nothing about the tests and must be fixed.
	BuildFailed
)

func (o Outcome) String() string {
	switch o {
	case Caught:
		return "caught"
	case TimedOut:
		return "caught (timeout)"
	case Survived:
		return "SURVIVED"
	case BuildFailed:
		return "BUILD FAILED"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Result is the outcome of one mutation.
type Result struct {
	Mutation Mutation
	Outcome  Outcome
	// FailedTest is the first failing test ("TestX/sub"), when a test
	// failed.
	FailedTest string
	Duration   time.Duration
	// Log is the file holding the output of go test (kept with -keep);
	// BuildErrors its first lines when the mutation did not compile.
	Log         string
	BuildErrors string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runRe := fs.String("run", "", "run only the mutations whose id matches this regular expression")
	list := fs.Bool("list", false, "print the mutations and exit")
	keep := fs.Bool("keep", false, "leave the temporary copy and the logs; the last mutation run stays applied in the copy")
	timeout := fs.Duration("timeout", DefaultTimeout, "bound on the tests of one mutation; a run past it counts as caught")
	root := fs.String("root", "", "the module root to copy (default: the git checkout holding the current directory)")
	listFile := fs.String("mutations", "", "the mutation list (default: ROOT/"+listPath+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mutate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var sel *regexp.Regexp
	if *runRe != "" {
		var err error
		if sel, err = regexp.Compile(*runRe); err != nil {
			fmt.Fprintf(stderr, "mutate: -run: %v\n", err)
			return 2
		}
	}
	if *root == "" {
		out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			fmt.Fprintf(stderr, "mutate: find the checkout: git rev-parse: %v\n", err)
			return 2
		}
		*root = strings.TrimSpace(string(out))
	}
	if *listFile == "" {
		*listFile = filepath.Join(*root, listPath)
	}

	muts, err := Load(*listFile)
	if err != nil {
		fmt.Fprintf(stderr, "mutate: %v\n", err)
		return 1
	}
	// Every mutation is checked against the source, also those -run
	// leaves out: a snippet that no longer matches is a defect of the list.
	if err := Check(*root, muts); err != nil {
		fmt.Fprintf(stderr, "mutate: %v\n", err)
		return 1
	}
	if sel != nil {
		var picked []Mutation
		for _, m := range muts {
			if sel.MatchString(m.ID) {
				picked = append(picked, m)
			}
		}
		if len(picked) == 0 {
			fmt.Fprintf(stderr, "mutate: no mutation id matches %q\n", *runRe)
			return 2
		}
		muts = picked
	}
	if *list {
		printList(stdout, muts)
		return 0
	}

	ctx, stop := signalContext()
	defer stop()
	start := time.Now()
	results, err := Run(ctx, *root, muts, Options{Timeout: *timeout, Keep: *keep, Progress: stdout})
	if err != nil {
		fmt.Fprintf(stderr, "mutate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	printTable(stdout, results, time.Since(start))
	for _, r := range results {
		if r.Outcome == Survived || r.Outcome == BuildFailed {
			return 1
		}
	}
	return 0
}

// Load reads and checks the mutation list at path: strict YAML, every field
// but To set, ids unique, From and To different, packages written as go
// test takes them ("./dir").
func Load(path string) ([]Mutation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the mutation list: %w", err)
	}
	var doc struct {
		Mutations []Mutation `yaml:"mutations"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	seen := map[string]bool{}
	for i, m := range doc.Mutations {
		name := m.ID
		if name == "" {
			name = fmt.Sprintf("mutations[%d]", i)
			errs = append(errs, fmt.Errorf("%s: no id", name))
		}
		if seen[m.ID] {
			errs = append(errs, fmt.Errorf("%s: id used twice", name))
		}
		seen[m.ID] = true
		if !strings.HasPrefix(m.Package, "./") {
			errs = append(errs, fmt.Errorf("%s: package %q must be a path starting with ./", name, m.Package))
		}
		if m.File == "" || filepath.IsAbs(m.File) || strings.HasPrefix(filepath.Clean(m.File), "..") {
			errs = append(errs, fmt.Errorf("%s: file %q must be a path inside the module", name, m.File))
		}
		if strings.TrimSpace(m.Description) == "" {
			errs = append(errs, fmt.Errorf("%s: no description of the promise it breaks", name))
		}
		if m.From == "" {
			errs = append(errs, fmt.Errorf("%s: empty from", name))
		}
		if m.From == m.To {
			errs = append(errs, fmt.Errorf("%s: from and to are the same", name))
		}
	}
	if len(doc.Mutations) == 0 {
		errs = append(errs, errors.New("no mutations"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Mutations, nil
}

// Check verifies that each mutation's snippet occurs exactly once in its
// file under root, and reports every one that does not.
func Check(root string, muts []Mutation) error {
	var errs []error
	for _, m := range muts {
		data, err := os.ReadFile(filepath.Join(root, m.File))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ID, err))
			continue
		}
		if n := strings.Count(string(data), m.From); n != 1 {
			errs = append(errs, fmt.Errorf("%s: the snippet occurs %d times in %s, must be once: %q", m.ID, n, m.File, m.From))
		}
	}
	return errors.Join(errs...)
}

// Options shape Run.
type Options struct {
	// Timeout bounds the tests of one mutation (0: DefaultTimeout).
	Timeout time.Duration
	// Keep leaves the temporary copy and the logs, with the last mutation
	// applied.
	Keep bool
	// Progress, when not nil, gets a line as each mutation starts and ends.
	Progress io.Writer
}

// Run copies the module at root into a temporary directory, then for each
// mutation in turn plants it, runs the tests of its package there, and
// restores the file. It blocks until every mutation ran or ctx is done; it
// returns an error only when the copy or a restore fails or ctx ends.
func Run(ctx context.Context, root string, muts []Mutation, opt Options) ([]Result, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	progress := opt.Progress
	if progress == nil {
		progress = io.Discard
	}
	tmp, err := os.MkdirTemp("", "paddock-mutate-")
	if err != nil {
		return nil, err
	}
	if opt.Keep {
		defer fmt.Fprintf(progress, "kept the copy in %s (source in src/, test output in logs/)\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	src := filepath.Join(tmp, "src")
	logs := filepath.Join(tmp, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		return nil, err
	}
	if err := copyTree(root, src); err != nil {
		return nil, err
	}
	var results []Result
	for i, m := range muts {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		fmt.Fprintf(progress, "[%d/%d] %s (%s) ...\n", i+1, len(muts), m.ID, m.Package)
		last := i == len(muts)-1
		r, err := runOne(ctx, src, logs, m, opt.Timeout, opt.Keep && last)
		if err != nil {
			return results, err
		}
		results = append(results, r)
		detail := r.FailedTest
		if r.Outcome == Survived {
			detail = m.Description
		}
		fmt.Fprintf(progress, "[%d/%d] %s: %s %s (%.0fs)\n", i+1, len(muts), m.ID, r.Outcome, detail, r.Duration.Seconds())
	}
	return results, nil
}

// runOne plants m in the copy at src, runs its package's tests, and
// restores the file unless leave is set.
func runOne(ctx context.Context, src, logs string, m Mutation, timeout time.Duration, leave bool) (Result, error) {
	path := filepath.Join(src, m.File)
	info, err := os.Stat(path)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", m.ID, err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", m.ID, err)
	}
	mutated := strings.Replace(string(orig), m.From, m.To, 1)
	if err := os.WriteFile(path, []byte(mutated), info.Mode().Perm()); err != nil {
		return Result{}, fmt.Errorf("%s: plant: %w", m.ID, err)
	}
	res := Result{Mutation: m}
	out, timedOut, exitErr, dur := goTest(ctx, src, m.Package, timeout)
	res.Duration = dur
	if !leave {
		if err := os.WriteFile(path, orig, info.Mode().Perm()); err != nil {
			return res, fmt.Errorf("%s: restore %s: %w", m.ID, m.File, err)
		}
	}
	res.Log = filepath.Join(logs, m.ID+".log")
	if err := os.WriteFile(res.Log, out, 0o644); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Outcome, res.FailedTest = classify(out, timedOut, exitErr)
	if res.Outcome == BuildFailed {
		lines := strings.SplitAfter(string(out), "\n")
		res.BuildErrors = strings.Join(lines[:min(len(lines), 20)], "")
	}
	return res, nil
}

// goTest runs go test on pkg in dir, bounded by timeout. The tests run in a
// process group of their own, killed whole when the bound passes, so a
// mutation that hangs a test leaves no process behind.
func goTest(ctx context.Context, dir, pkg string, timeout time.Duration) (out []byte, timedOut bool, err error, dur time.Duration) {
	// go test's own -timeout ends a hung test binary with a goroutine
	// dump; the context is the backstop for a hang outside the tests.
	ctx, cancel := context.WithTimeout(ctx, timeout+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-failfast", "-vet=off", "-timeout="+timeout.String(), pkg)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	start := time.Now()
	err = cmd.Run()
	dur = time.Since(start)
	timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	return buf.Bytes(), timedOut, err, dur
}

// classify reads the outcome of a go test run from its output and error.
func classify(out []byte, killed bool, err error) (Outcome, string) {
	if err == nil {
		return Survived, ""
	}
	if bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")) {
		return BuildFailed, ""
	}
	name := firstFailure(out)
	if killed || bytes.Contains(out, []byte("panic: test timed out after")) {
		return TimedOut, name
	}
	if name == "" {
		name = "(no test named: see the log)"
	}
	return Caught, name
}

// firstFailure returns the first test go test reports as failed, refined
// to its first failed subtest ("TestX/sub").
func firstFailure(out []byte) string {
	var top string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		rest, ok := strings.CutPrefix(trimmed, "--- FAIL: ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		if top == "" {
			if trimmed != line {
				continue // a subtest line before any top-level one
			}
			top = name
			continue
		}
		if strings.HasPrefix(name, top+"/") {
			return name
		}
		if trimmed == line {
			break // the next top-level failure
		}
	}
	return top
}

// copyTree copies the files git tracks under root, and the untracked ones
// it does not ignore, into dst, as they are on disk. Tracked files deleted
// from the working tree are left out. Ignored node_modules directories
// (the npm packages some tests run, installed by make npm-deps) are linked
// into the copy, not copied: without them those tests would fail on every
// mutation of their package, which would then count as caught.
func copyTree(root, dst string) error {
	if err := copyFiles(root, dst); err != nil {
		return err
	}
	return linkNodeModules(root, dst)
}

// copyFiles copies the files of copyTree.
func copyFiles(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("list the files of %s: git ls-files: %w: %s", root, err, strings.TrimSpace(stderr.String()))
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(string(out), "\x00") {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		if err := copyFile(filepath.Join(root, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

// linkNodeModules links each node_modules directory git ignores under root
// to the same place under dst.
func linkNodeModules(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("list the ignored directories of %s: git ls-files: %w: %s", root, err, strings.TrimSpace(stderr.String()))
	}
	for _, name := range strings.Split(string(out), "\x00") {
		name = strings.TrimSuffix(name, "/")
		if filepath.Base(name) != "node_modules" {
			continue
		}
		abs, err := filepath.Abs(filepath.Join(root, name))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(abs, filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies one file, keeping its mode, or one symbolic link; a
// missing source is skipped.
func copyFile(from, to string) error {
	info, err := os.Lstat(from)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	switch {
	case info.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		return os.Symlink(target, to)
	case info.Mode().IsRegular():
		data, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, info.Mode().Perm())
	}
	return nil // a submodule's directory or another non-file: not ours to copy
}

// signalContext returns a context cancelled by SIGINT or SIGTERM, so an
// interrupted run kills the tests it started and removes its copy.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// printList prints each mutation: id, package, file, what it breaks.
func printList(w io.Writer, muts []Mutation) {
	for _, m := range muts {
		fmt.Fprintf(w, "%s (%s, %s)\n    %s\n", m.ID, m.Package, m.File, strings.Join(strings.Fields(m.Description), " "))
	}
}

// printTable prints the results and a summary line.
func printTable(w io.Writer, results []Result, total time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPACKAGE\tRESULT\tFIRST FAILING TEST\tSECONDS")
	counts := map[Outcome]int{}
	for _, r := range results {
		counts[r.Outcome]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\n", r.Mutation.ID, r.Mutation.Package, r.Outcome, r.FailedTest, r.Duration.Seconds())
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d mutations: %d caught (%d by timeout), %d survived, %d did not build; %s\n",
		len(results), counts[Caught]+counts[TimedOut], counts[TimedOut], counts[Survived], counts[BuildFailed], total.Round(time.Second))
	for _, r := range results {
		switch r.Outcome {
		case Survived:
			fmt.Fprintf(w, "survived: %s: %s\n", r.Mutation.ID, strings.Join(strings.Fields(r.Mutation.Description), " "))
		case BuildFailed:
			fmt.Fprintf(w, "did not build: %s:\n%s", r.Mutation.ID, r.BuildErrors)
		}
	}
}
