// Package annotate writes manifest errors and warnings for CI: as GitHub
// Actions workflow commands (`::error file=F,line=L,col=C,title=T::M`), so
// that they land on the lines of a pull request, or as JSON for other
// annotators. The default text output of the commands does not go
// through it.
package annotate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/paddock-sh/paddock/manifest"
)

// Severities of a Finding.
const (
	Error   = "error"
	Warning = "warning"
	Notice  = "notice"
)

// Finding is one problem, or one note, about the manifests.
type Finding struct {
	// Severity is Error, Warning or Notice.
	Severity string `json:"severity"`
	// File, Line and Col place it; File is empty (and Line, Col 0) for
	// what belongs to no file.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
	// Field is the manifest field ("apps.web.instances"), empty for a
	// syntax error or what concerns no field.
	Field string `json:"field,omitempty"`
	// Message says what is wrong, without the position and field.
	Message string `json:"message"`
}

// FromError returns the Finding of err, of severity sev: a
// manifest.FieldError gives its position, field and message, a
// manifest.PathError its path; anything else only a message.
func FromError(sev string, err error) Finding {
	var fe *manifest.FieldError
	if errors.As(err, &fe) {
		return Finding{Severity: sev, File: fe.Pos.File, Line: fe.Pos.Line, Col: fe.Pos.Col, Field: fe.Field, Message: fe.Msg}
	}
	var pe *manifest.PathError
	if errors.As(err, &pe) {
		return Finding{Severity: sev, File: pe.Path, Message: pe.Err.Error()}
	}
	return Finding{Severity: sev, Message: err.Error()}
}

// FromErrors returns the Finding of each error of err (manifest.Errors).
func FromErrors(sev string, err error) []Finding {
	var out []Finding
	for _, e := range manifest.Errors(err) {
		out = append(out, FromError(sev, e))
	}
	return out
}

// Rel returns f with its File relative to dir when it is inside dir:
// GitHub places an annotation by the file's path in the repository, the
// working directory of a workflow's steps. A file outside dir keeps its
// path.
func (f Finding) Rel(dir string) Finding {
	if f.File == "" || dir == "" {
		return f
	}
	abs, err := filepath.Abs(f.File)
	if err != nil {
		return f
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return f
	}
	f.File = filepath.ToSlash(rel)
	return f
}

// WriteGitHub writes each finding as a GitHub Actions workflow command,
// one a line: "::error file=deploy/web.yaml,line=4,col=16,title=apps.web.instances::want a number".
// The title is the field, else title; values are escaped as GitHub
// requires (EscapeData, EscapeProperty).
func WriteGitHub(w io.Writer, title string, findings []Finding) error {
	for _, f := range findings {
		var props []string
		if f.File != "" {
			props = append(props, "file="+EscapeProperty(f.File))
			if f.Line > 0 {
				props = append(props, fmt.Sprintf("line=%d", f.Line))
			}
			if f.Col > 0 {
				props = append(props, fmt.Sprintf("col=%d", f.Col))
			}
		}
		t := title
		if f.Field != "" {
			t = f.Field
		}
		if t != "" {
			props = append(props, "title="+EscapeProperty(t))
		}
		sev := f.Severity
		if sev != Error && sev != Warning && sev != Notice {
			sev = Error
		}
		line := "::" + sev
		if len(props) > 0 {
			line += " " + strings.Join(props, ",")
		}
		if _, err := fmt.Fprintf(w, "%s::%s\n", line, EscapeData(f.Message)); err != nil {
			return err
		}
	}
	return nil
}

// Report is the JSON output of a command: the findings, and whether the
// manifests are valid.
type Report struct {
	Valid    bool      `json:"valid"`
	Findings []Finding `json:"findings"`
}

// WriteJSON writes r as one indented JSON document.
func WriteJSON(w io.Writer, r Report) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// dataEscaper and propertyEscaper escape as GitHub's own toolkit does
// (@actions/core, command.ts): a message may hold anything but a line
// break, and a property neither "," nor ":", which end it.
var (
	dataEscaper     = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	propertyEscaper = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	unescaper       = strings.NewReplacer("%25", "%", "%0D", "\r", "%0A", "\n", "%3A", ":", "%2C", ",")
)

// EscapeData escapes a workflow command's message: %, CR and LF.
func EscapeData(s string) string { return dataEscaper.Replace(s) }

// EscapeProperty escapes a workflow command's property value: %, CR, LF,
// ":" and ",".
func EscapeProperty(s string) string { return propertyEscaper.Replace(s) }

// Unescape reverses EscapeData and EscapeProperty, as the runner does.
func Unescape(s string) string { return unescaper.Replace(s) }
