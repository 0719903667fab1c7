package statuspage

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// ContentSecurityPolicy is sent with every answer of the page: the page
// loads scripts, styles, images and data from its own origin only, runs no
// inline script or style, and cannot be framed or submit anything.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ReadOnly answers every request but GET and HEAD with 405 Method Not
// Allowed, whatever its path, and passes the others to h: nothing served
// behind it can change state.
func ReadOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, fmt.Sprintf("%s is not allowed: this listener is read-only (GET and HEAD)", r.Method),
				http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// page wraps a route of the page: its security headers, and the host
// guard.
func page(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !hostAllowed(r) {
			http.Error(w, fmt.Sprintf("host %q is not this machine: a page served on a loopback address answers "+
				"only requests for localhost or an IP address (a reverse proxy must send Host: 127.0.0.1:PORT)", r.Host),
				http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether r may be answered. On a connection to a
// loopback address, only a Host that is an IP address, localhost or a
// name under .localhost is: a web site whose name an attacker points at
// 127.0.0.1 (DNS rebinding) cannot read the page from a browser on this
// machine. On other addresses the operator chose to expose the page, and
// any Host is answered.
func hostAllowed(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || !IsLoopback(local) {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return true
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// IsLoopback reports whether addr is a TCP address on the loopback
// interface (127.0.0.0/8 or ::1).
func IsLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// ListenAddr returns the address --http-addr asks for, HOST:PORT, with
// 127.0.0.1 for an empty host (":8080"): the page is on loopback unless a
// host is named. It fails on anything but HOST:PORT.
func ListenAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("want HOST:PORT, or :PORT for 127.0.0.1:PORT: %w", err)
	}
	if port == "" {
		return "", fmt.Errorf("%q: want HOST:PORT, or :PORT for 127.0.0.1:PORT: missing port", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
