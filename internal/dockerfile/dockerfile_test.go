package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\n" +
		"ARG GO=1.26\n" +
		"\n" +
		"from golang:${GO} AS build\n" +
		"RUN CGO_ENABLED=0 go build \\\n" +
		"  # a comment inside\n" +
		"\n" +
		"  -o /out/x ./cmd/x\n" +
		"FROM scratch\n" +
		"COPY --from=build --chown=1:1 /out/x /usr/local/bin/x\n" +
		"USER 1000:1000\n" +
		"ENTRYPOINT [\"x\", \"run\", \"/etc/x\"]\n" +
		"CMD x run\n"
	f, err := Parse("Dockerfile", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Args) != 1 || f.Args[0].Args != "GO=1.26" || f.Args[0].Line != 2 {
		t.Errorf("global ARGs %+v", f.Args)
	}
	if len(f.Stages) != 2 {
		t.Fatalf("%d stages, want 2", len(f.Stages))
	}
	build, ok := f.Stage("build")
	if !ok || build.Base != "golang:${GO}" || build.From.Line != 4 {
		t.Fatalf("stage build %+v", build)
	}
	run := build.Find("RUN")
	if len(run) != 1 || run[0].Args != "CGO_ENABLED=0 go build -o /out/x ./cmd/x" || run[0].Line != 5 {
		t.Errorf("RUN %+v", run)
	}
	checkFinal(t, f.Stages[1])
}

// checkFinal checks the final stage of TestParse's file, through the
// accessors of Stage and Instruction.
func checkFinal(t *testing.T, final Stage) {
	if final.Name != "" || final.Base != "scratch" {
		t.Errorf("final stage %+v", final)
	}
	cp, _ := final.Last("COPY")
	if from, ok := cp.Flag("from"); !ok || from != "build" {
		t.Errorf("COPY --from = %q, %v", from, ok)
	}
	if chown, _ := cp.Flag("chown"); chown != "1:1" {
		t.Errorf("COPY --chown = %q", chown)
	}
	if _, ok := cp.Flag("chmod"); ok {
		t.Error("COPY has no --chmod")
	}
	if got := cp.Fields(); !reflect.DeepEqual(got, []string{"/out/x", "/usr/local/bin/x"}) {
		t.Errorf("COPY fields %q", got)
	}
	ep, _ := final.Last("ENTRYPOINT")
	if args, ok := ep.Exec(); !ok || !reflect.DeepEqual(args, []string{"x", "run", "/etc/x"}) {
		t.Errorf("ENTRYPOINT exec form %q, %v", args, ok)
	}
	cmd, _ := final.Last("CMD")
	if _, ok := cmd.Exec(); ok {
		t.Error("CMD x run taken for the exec form")
	}
	if _, ok := final.Last("HEALTHCHECK"); ok {
		t.Error("a HEALTHCHECK found where there is none")
	}
}

func TestParseEscapeDirective(t *testing.T) {
	f, err := Parse("Dockerfile", strings.NewReader("# escape=`\nFROM scratch\nRUN a `\n b\\\n"))
	if err != nil {
		t.Fatal(err)
	}
	if run, _ := f.Stages[0].Last("RUN"); run.Args != `a b\` {
		t.Errorf("RUN %q, want %q", run.Args, `a b\`)
	}
}

func TestFields(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{`a  b`, "a|b"},
		{`-ldflags "-s -w -X main.version=${V}" -o x`, "-ldflags|-s -w -X main.version=${V}|-o|x"},
		{`""`, ""},
		{`a "" b`, "a||b"},
	} {
		got := strings.Join(Instruction{Args: tc.args}.Fields(), "|")
		if got != tc.want {
			t.Errorf("Fields(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"empty", "", "Dockerfile:1:1: no FROM"},
		{"comments only", "# just\n# comments\n", "Dockerfile:2:1: no FROM"},
		{"before FROM", "ARG A\nRUN true\nFROM scratch\n", "Dockerfile:2:1: RUN before the first FROM"},
		{"unknown", "FROM scratch\nRUNN true\n", `Dockerfile:2:1: unknown instruction "RUNN"`},
		{"no image", "FROM\n", "Dockerfile:1:1: FROM: no image"},
		{"bad AS", "FROM a B c\n", `Dockerfile:1:1: FROM: want an image and an optional AS name, got "a B c"`},
		{"continued unknown", "FROM scratch\nRUN a \\\n\nFOO\nBAR x\n", `Dockerfile:5:1: unknown instruction "BAR"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("Dockerfile", strings.NewReader(tc.src))
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v, want an *Error", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want it to start with %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: no input makes Parse panic, and what it returns is a File
// with at least one stage or an error.
func FuzzParse(f *testing.F) {
	f.Add("FROM a AS b\nRUN x \\\n y\nCOPY --from=b /a /b\nENTRYPOINT [\"p\"]\n")
	f.Add("# escape=`\nFROM a\nRUN x `\n")
	f.Add("ARG A\nfrom a\nuser 1\n")
	f.Fuzz(func(t *testing.T, src string) {
		file, err := Parse("fuzz", strings.NewReader(src))
		if err != nil {
			if file != nil {
				t.Fatal("a File beside an error")
			}
			return
		}
		if len(file.Stages) == 0 {
			t.Fatal("a File without a stage and no error")
		}
		for _, s := range file.Stages {
			for _, in := range s.Instructions {
				in.Exec()
				in.Fields()
				in.Flag("from")
			}
		}
	})
}
