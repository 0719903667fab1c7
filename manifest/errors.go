package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// Pos is a place in a manifest file. Line and Col count from 1.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col".
func (p Pos) String() string {
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Compare orders positions by file, then line, then column: -1 when p
// comes before q, 1 when after, 0 when they are the same. It is the order
// errors and warnings are reported in.
func (p Pos) Compare(q Pos) int {
	return cmp.Or(cmp.Compare(p.File, q.File), cmp.Compare(p.Line, q.Line), cmp.Compare(p.Col, q.Col))
}

// FieldError is one problem with one value of a manifest. Its text is
// "FILE:LINE:COL: FIELD: message", e.g.
// "deploy/web.yaml:7:16: apps.web.instances: must be an integer >= 0 or "auto", got -2".
type FieldError struct {
	Pos   Pos
	Field string // full path: "apps.web.instances"; empty for a syntax error
	Msg   string
	Err   error // the underlying error, if any
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, e.Field, e.Msg)
}

func (e *FieldError) Unwrap() error { return e.Err }

// PathError reports a manifest path that cannot be read: a missing file, an
// unreadable directory. Unlike a FieldError it is not about the content.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return fmt.Sprintf("%s: %v", e.Path, e.Err) }
func (e *PathError) Unwrap() error { return e.Err }

// errorList collects FieldErrors and PathErrors.
type errorList struct {
	errs []error
}

func (l *errorList) add(pos Pos, field, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) addErr(err error) {
	if err != nil {
		l.errs = append(l.errs, err)
	}
}

// err returns nil or a *multierror.Error whose errors are sorted by file,
// line and column and whose text is one error per line.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sortErrors(l.errs)
	return &multierror.Error{Errors: l.errs, ErrorFormat: formatLines}
}

func formatLines(errs []error) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func sortErrors(errs []error) {
	key := func(e error) (string, int, int) {
		var fe *FieldError
		if errors.As(e, &fe) {
			return fe.Pos.File, fe.Pos.Line, fe.Pos.Col
		}
		var pe *PathError
		if errors.As(e, &pe) {
			return pe.Path, 0, 0
		}
		var fileErr *FileError
		if errors.As(e, &fileErr) {
			return fileErr.Path, 0, 0
		}
		return "", 0, 0
	}
	sort.SliceStable(errs, func(i, j int) bool {
		fi, li, ci := key(errs[i])
		fj, lj, cj := key(errs[j])
		if fi != fj {
			return fi < fj
		}
		if li != lj {
			return li < lj
		}
		return ci < cj
	})
}

// Join returns nil, or one error holding errs sorted by file, line and
// column, one per line: the form Load returns. Callers that find problems
// of their own with manifest values (a listen address that cannot be bound)
// report them the same way.
func Join(errs []error) error {
	l := errorList{errs: errs}
	return l.err()
}

// Errors returns the individual errors inside err as Load, Decode and
// Validate return it: one element per problem.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	var me *multierror.Error
	if errors.As(err, &me) {
		return me.Errors
	}
	return []error{err}
}

// IsPathError reports whether err includes a path that could not be read
// (as opposed to content that is invalid).
func IsPathError(err error) bool {
	for _, e := range Errors(err) {
		var pe *PathError
		if errors.As(e, &pe) {
			return true
		}
	}
	return false
}
