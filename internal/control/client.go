package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Client talks to a supervisor's control socket.
type Client struct {
	Path string
	http *http.Client
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, err
			}
			if err := checkServer(conn.(*net.UnixConn)); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
		DisableCompression: true,
	}
	return &Client{Path: path, http: &http.Client{Transport: tr}}
}

// ErrUntrustedServer is returned when the process serving the socket runs
// as another user than the client's own or root.
var ErrUntrustedServer = errors.New("the control socket is served by another user")

// checkServer makes a client that is not root talk only to a supervisor
// running as itself or as root: in a shared directory (the default
// /tmp/paddock-<uid>.sock), another user could have bound the name first
// and would otherwise be trusted with the client's requests and believed
// in its answers. root may talk to any user's supervisor.
func checkServer(conn *net.UnixConn) error {
	uid := uint32(os.Getuid())
	if uid == 0 {
		return nil
	}
	cred, err := PeerCred(conn)
	if err != nil {
		return fmt.Errorf("control socket: reading the server's credentials: %w", err)
	}
	if cred.Uid != uid && cred.Uid != 0 {
		return fmt.Errorf("%w: uid %d (pid %d) serves it, you are uid %d; refusing to talk to it", ErrUntrustedServer, cred.Uid, cred.Pid, uid)
	}
	return nil
}

// NotRunningError says no supervisor answers on the socket.
type NotRunningError struct {
	Path string
	Err  error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("no paddock supervisor answers on %s (%v); start one with `paddock run`, or name its socket with --socket or $%s",
		e.Path, e.Err, SocketEnv)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// APIError is an error answer from the supervisor.
type APIError struct {
	Status int
	ErrorResponse
}

func (e *APIError) Error() string {
	if len(e.Errors) > 0 {
		return strings.Join(e.Errors, "\n")
	}
	return e.ErrorResponse.Error
}

// Messages returns every error message: the manifest errors one by one.
func (e *APIError) Messages() []string {
	if len(e.Errors) > 0 {
		return e.Errors
	}
	return []string{e.ErrorResponse.Error}
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://paddock"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &NotRunningError{Path: c.Path, Err: op.Err}
		}
		if errors.Is(err, ErrUntrustedServer) {
			return nil, fmt.Errorf("%s: %w", c.Path, errors.Unwrap(err))
		}
		if ctx.Err() == nil {
			return nil, fmt.Errorf("the supervisor on %s closed the connection without answering "+
				"(it serves only its own user and root): %w", c.Path, err)
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		apiErr := &APIError{Status: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(&apiErr.ErrorResponse); err != nil || apiErr.ErrorResponse.Error == "" {
			apiErr.ErrorResponse.Error = resp.Status
		}
		return nil, apiErr
	}
	return resp, nil
}

// Do sends a request with body (nil: none) as JSON and decodes the answer
// into out (nil: ignored).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("bad answer from the supervisor: %w", err)
	}
	return nil
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var st StatusResponse
	if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Events follows GET /v1/events (app "" for all apps): ready is called once
// the stream is open, then f with each event until f returns false, ctx
// ends or the supervisor stops (io.EOF is not reported).
func (c *Client) Events(ctx context.Context, app string, ready func(), f func(Event) bool) error {
	path := "/v1/events"
	if app != "" {
		path += "?app=" + url.QueryEscape(app)
	}
	resp, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ready != nil {
		ready()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	return readLines(sc, f)
}

// Logs reads GET /v1/logs: the last lines lines of app (all when "") and
// worker (all when 0), then, with follow, what they write next.
func (c *Client) Logs(ctx context.Context, app string, worker, lines int, follow bool, f func(LogLine) bool) error {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	if worker != 0 {
		q.Set("worker", fmt.Sprint(worker))
	}
	q.Set("lines", fmt.Sprint(lines))
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.request(ctx, http.MethodGet, "/v1/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	return readLines(sc, f)
}

// readLines calls f with each line of a JSON-lines stream until it ends,
// f returns false, or a line is not valid JSON.
func readLines[T any](sc *bufio.Scanner, f func(T) bool) error {
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("bad line from the supervisor: %w", err)
		}
		if !f(v) {
			return nil
		}
	}
	return sc.Err()
}
