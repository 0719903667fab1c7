// Package dockerfile reads a Dockerfile into its stages and instructions:
// enough for paddock's tests to check what its image promises (the
// entrypoint, the user, the build flags, what is copied) where no container
// engine runs. It is a reader, not a builder: it expands no variables and
// runs nothing.
//
// It follows the Dockerfile reference for what it reads: parser directives
// (`# escape=`), comment lines, line continuations (the escape character at
// the end of a line; comment and empty lines inside are skipped), keywords
// in any case, leading `--flag=value` options, and the exec (JSON array)
// form. Heredocs (`RUN <<EOF`) are not read: their lines would be taken
// for instructions and most likely refused as unknown.
package dockerfile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Instruction is one instruction, its continuation lines joined.
type Instruction struct {
	// Keyword is the instruction's keyword in upper case: FROM, RUN, COPY...
	Keyword string
	// Flags are its leading options (`--from=build`, `--chown=1000`), as
	// written.
	Flags []string
	// Args is the rest of the instruction, continuation lines joined with a
	// space, trimmed.
	Args string
	// Line is the line the instruction starts on (from 1).
	Line int
}

// Flag returns the value of the leading option --name (`--from=build`
// gives "build" for "from") and whether the instruction has it.
func (in Instruction) Flag(name string) (string, bool) {
	for _, f := range in.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// Exec returns the arguments of an instruction in exec form (a JSON array
// of strings: `ENTRYPOINT ["paddock", "run"]`) and true, or nil and false
// for the shell form. As Docker does, Args that do not parse as a JSON
// array of strings are the shell form.
func (in Instruction) Exec() ([]string, bool) {
	if !strings.HasPrefix(in.Args, "[") {
		return nil, false
	}
	var args []string
	if err := json.Unmarshal([]byte(in.Args), &args); err != nil {
		return nil, false
	}
	return args, true
}

// Fields returns Args split at white space, outside double quotes (a COPY's
// sources and destination, an ENV's pairs), quotes removed.
func (in Instruction) Fields() []string {
	var out []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range in.Args {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case unicode.IsSpace(r) && !quoted:
			if inWord {
				out = append(out, cur.String())
			}
			cur.Reset()
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// Stage is the instructions from one FROM to the next.
type Stage struct {
	// From is the FROM instruction that starts the stage.
	From Instruction
	// Base is the image (or earlier stage) it starts from.
	Base string
	// Name is its `AS name` ("" without).
	Name string
	// Instructions are the stage's instructions after FROM, in order.
	Instructions []Instruction
}

// Find returns the stage's instructions with keyword (upper case), in
// order.
func (s Stage) Find(keyword string) []Instruction {
	var out []Instruction
	for _, in := range s.Instructions {
		if in.Keyword == keyword {
			out = append(out, in)
		}
	}
	return out
}

// Last returns the last instruction of the stage with keyword (upper case),
// the one that takes effect for ENTRYPOINT, USER, CMD, and whether there is
// one.
func (s Stage) Last(keyword string) (Instruction, bool) {
	found := s.Find(keyword)
	if len(found) == 0 {
		return Instruction{}, false
	}
	return found[len(found)-1], true
}

// File is a read Dockerfile.
type File struct {
	// Args are the ARG instructions before the first FROM.
	Args []Instruction
	// Stages are the build stages in order: the last is what a build
	// without --target gives.
	Stages []Stage
}

// Stage returns the stage called name, and whether there is one.
func (f *File) Stage(name string) (Stage, bool) {
	for _, s := range f.Stages {
		if s.Name != "" && strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return Stage{}, false
}

// keywords are the instructions of the Dockerfile reference.
var keywords = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true,
	"ENV": true, "EXPOSE": true, "FROM": true, "HEALTHCHECK": true,
	"LABEL": true, "MAINTAINER": true, "ONBUILD": true, "RUN": true,
	"SHELL": true, "STOPSIGNAL": true, "USER": true, "VOLUME": true,
	"WORKDIR": true,
}

// Error is a problem found reading a Dockerfile, at a line and column.
type Error struct {
	Name string // the file's name, as given to Parse
	Line int
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Line, e.Col, e.Msg)
}

// maxLine bounds one physical line, as a guard against a file that is not
// a Dockerfile.
const maxLine = 1 << 20

// Parse reads the Dockerfile r, called name in errors. It returns an
// *Error for an unknown instruction, an instruction other than ARG before
// the first FROM, a FROM without an image or with a malformed AS, or a file
// without a FROM; a read error is returned wrapped.
func Parse(name string, r io.Reader) (*File, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	p := parser{name: name, escape: '\\', directives: true}
	for sc.Scan() {
		p.lineNo++
		if err := p.line(sc.Text()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, p.lineNo+1, err)
	}
	if err := p.flush(); err != nil {
		return nil, err
	}
	if len(p.file.Stages) == 0 {
		return nil, &Error{Name: name, Line: max(p.lineNo, 1), Col: 1, Msg: "no FROM: a Dockerfile has at least one stage"}
	}
	return &p.file, nil
}

// parser holds the state of Parse between lines.
type parser struct {
	name       string
	escape     rune
	directives bool // still at the top, where parser directives may be
	lineNo     int
	pending    *Instruction // an instruction continued on the next line
	text       strings.Builder
	file       File
}

// line takes one physical line.
func (p *parser) line(s string) error {
	trimmed := strings.TrimLeftFunc(s, unicode.IsSpace)
	if p.directives {
		if p.directive(trimmed) {
			return nil
		}
		p.directives = false
	}
	if strings.HasPrefix(trimmed, "#") || (p.pending != nil && trimmed == "") {
		return nil // comments, and empty lines inside a continuation
	}
	if p.pending == nil {
		if trimmed == "" {
			return nil
		}
		p.pending = &Instruction{Line: p.lineNo}
		p.text.Reset()
	}
	body := strings.TrimRightFunc(s, unicode.IsSpace)
	continued := strings.HasSuffix(body, string(p.escape))
	if continued {
		body = strings.TrimSuffix(body, string(p.escape))
	}
	if p.text.Len() > 0 {
		p.text.WriteByte(' ')
	}
	p.text.WriteString(strings.TrimSpace(body))
	if continued {
		return nil
	}
	return p.flush()
}

// directive reads a parser directive (`# escape=“ ` “, `# syntax=...`)
// and reports whether the line was one.
func (p *parser) directive(trimmed string) bool {
	rest, ok := strings.CutPrefix(trimmed, "#")
	if !ok {
		return false
	}
	k, v, ok := strings.Cut(rest, "=")
	if !ok {
		return false
	}
	k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
	if strings.ContainsFunc(k, unicode.IsSpace) || k == "" {
		return false
	}
	if k == "escape" && (v == "`" || v == `\`) {
		p.escape = rune(v[0])
	}
	return true
}

// flush ends the pending instruction, if any, and files it.
func (p *parser) flush() error {
	in := p.pending
	if in == nil {
		return nil
	}
	p.pending = nil
	text := p.text.String()
	word, rest, _ := strings.Cut(text, " ")
	in.Keyword = strings.ToUpper(word)
	if !keywords[in.Keyword] {
		return &Error{Name: p.name, Line: in.Line, Col: 1, Msg: fmt.Sprintf("unknown instruction %q", word)}
	}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		in.Flags = append(in.Flags, flag)
		rest = strings.TrimSpace(after)
	}
	in.Args = rest
	return p.file.add(p.name, *in)
}

// add files in: the start of a stage, a global ARG, or an instruction of
// the current stage.
func (f *File) add(name string, in Instruction) error {
	switch {
	case in.Keyword == "FROM":
		s, err := newStage(name, in)
		if err != nil {
			return err
		}
		f.Stages = append(f.Stages, s)
	case len(f.Stages) == 0 && in.Keyword == "ARG":
		f.Args = append(f.Args, in)
	case len(f.Stages) == 0:
		return &Error{Name: name, Line: in.Line, Col: 1, Msg: fmt.Sprintf("%s before the first FROM (only ARG may come before it)", in.Keyword)}
	default:
		s := &f.Stages[len(f.Stages)-1]
		s.Instructions = append(s.Instructions, in)
	}
	return nil
}

// newStage reads FROM [--platform=...] image [AS name].
func newStage(name string, in Instruction) (Stage, error) {
	fields := strings.Fields(in.Args)
	bad := func(msg string) (Stage, error) {
		return Stage{}, &Error{Name: name, Line: in.Line, Col: 1, Msg: "FROM: " + msg}
	}
	switch {
	case len(fields) == 1:
		return Stage{From: in, Base: fields[0]}, nil
	case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
		return Stage{From: in, Base: fields[0], Name: fields[2]}, nil
	case len(fields) == 0:
		return bad("no image")
	default:
		return bad(fmt.Sprintf("want an image and an optional AS name, got %q", in.Args))
	}
}
