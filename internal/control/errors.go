package control

// The one place where an error becomes an HTTP status: handlers return
// errors, marked with a kind where the error alone does not say it, and
// statusOf maps them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/paddock-sh/paddock/internal/fanout"
	"github.com/paddock-sh/paddock/internal/plural"
	"github.com/paddock-sh/paddock/internal/supervisor"
	"github.com/paddock-sh/paddock/manifest"
)

// Kinds of errors that statusOf maps to a status and that no package
// below this one reports by itself. A handler marks an error with one
// through withKind, which keeps the error's message.
var (
	// errBadRequest: a request that cannot be read or carried out as
	// given (bad JSON, an unknown field, a value out of range, an unknown
	// signal): 400.
	errBadRequest = errors.New("bad request")
	// errNoEndpoint: no route for the method and path: 404.
	errNoEndpoint = errors.New("no such endpoint")
	// errInvalidManifests: manifests that do not load, validate or apply
	// (reload, diff); nothing was changed: 422.
	errInvalidManifests = errors.New("invalid manifests")
)

// statusRules maps errors to HTTP statuses: the first rule that an error
// matches (errors.Is) gives its status. Order matters where an error may
// match two: a request the supervisor refuses because it is stopping is a
// 503 whatever its kind; a reload cut short by the end of its request is
// still answered as a failed reload (422), as it always was. An error that
// matches no rule is a 409: the request cannot be carried out as things
// stand (no live worker to signal, no worker with an IPC channel).
var statusRules = []struct {
	err    error
	status int
}{
	{errNoEndpoint, http.StatusNotFound},
	{supervisor.ErrUnknownApp, http.StatusNotFound},
	{supervisor.ErrNotRunning, http.StatusServiceUnavailable},
	{fanout.ErrTooManyFollowers, http.StatusServiceUnavailable},
	{errInvalidManifests, http.StatusUnprocessableEntity},
	{context.Canceled, http.StatusServiceUnavailable},
	{errBadRequest, http.StatusBadRequest},
}

// statusOf returns the HTTP status that answers err (statusRules).
func statusOf(err error) int {
	for _, r := range statusRules {
		if errors.Is(err, r.err) {
			return r.status
		}
	}
	return http.StatusConflict
}

// kindError marks err with kind, one of the errors statusRules maps,
// without changing err's message: the answer's body says what err says.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// withKind returns err marked with kind (nil when err is nil).
func withKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: kind, err: err}
}

// badRequest marks err as a request error (400, unless a rule before
// errBadRequest matches).
func badRequest(err error) error { return withKind(errBadRequest, err) }

// handle adapts a handler that returns an error: nil means it answered;
// any other error is answered with statusOf(err) and an ErrorResponse
// (writeError). A handler returns an error only before it wrote anything.
func handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, statusOf(err), err)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers err with status code: its message, and each manifest
// error when it holds several.
func writeError(w http.ResponseWriter, code int, err error) {
	body := ErrorResponse{Error: err.Error()}
	errs := manifest.Errors(err)
	if len(errs) > 1 {
		body.Error = plural.Count(len(errs), "error")
		for _, e := range errs {
			body.Errors = append(body.Errors, e.Error())
		}
	}
	for _, e := range errs {
		var fe *manifest.FieldError
		var pe *manifest.PathError
		switch {
		case errors.As(e, &fe):
			body.Details = append(body.Details, ErrorDetail{File: fe.Pos.File, Line: fe.Pos.Line, Col: fe.Pos.Col, Field: fe.Field, Message: fe.Msg})
		case errors.As(e, &pe):
			body.Details = append(body.Details, ErrorDetail{File: pe.Path, Message: pe.Err.Error()})
		}
	}
	writeJSON(w, code, body)
}

// decode reads a JSON body into v, refusing unknown fields; an empty body
// leaves v as it is. Its errors are request errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return badRequest(fmt.Errorf("request body: %w", err))
	}
	return nil
}
