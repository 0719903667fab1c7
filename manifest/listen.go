package manifest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseListen parses one `listen:` address: a TCP port ("8000": every
// interface, IPv4 and IPv6), "host:port" with an IP address as host
// ("127.0.0.1:8000", "[::1]:8000", ":8000"), "unix:PATH" with an optional
// "?mode=0600" (a relative PATH is resolved against base, the manifest's
// directory), or "udp:" followed by a port or host:port written as for TCP
// ("udp:5353", "udp::5353", "udp:0.0.0.0:5353", "udp:[::1]:53"). The
// Address, and so the Key, is the same for every way of writing one
// socket: the host as net.IP prints it ("[::]" as "", since both bind every
// interface), the unix path made absolute and cleaned.
func ParseListen(s, base string) (Listen, error) {
	l := Listen{Raw: s}
	if rest, ok := strings.CutPrefix(s, "udp:"); ok {
		if rest == "" || strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, ".") {
			return l, errors.New("a udp address is a port or host:port (udp:5353, udp:127.0.0.1:5353, udp:[::1]:5353); unix datagram sockets are not supported")
		}
		addr, err := parseHostPort(rest, "write udp:5353, \"udp:127.0.0.1:5353\" or \"udp:[::1]:5353\"")
		if err != nil {
			return l, err
		}
		l.Network, l.Address = "udp", addr
		return l, nil
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		path, query, _ := strings.Cut(rest, "?")
		if path == "" {
			return l, errors.New("a unix address needs a path: unix:/run/web.sock")
		}
		if strings.IndexByte(path, 0) >= 0 {
			return l, errors.New("a unix socket path must not contain NUL")
		}
		l.Network, l.Address, l.Mode = "unix", absFrom(base, path), DefaultUnixMode
		if len(l.Address) > 107 {
			return l, fmt.Errorf("unix socket path %s is longer than the 107 bytes the kernel allows", l.Address)
		}
		if query != "" {
			q, err := url.ParseQuery(query)
			if err != nil {
				return l, fmt.Errorf("bad options %q: %v", query, err)
			}
			for k := range q {
				if k != "mode" {
					return l, fmt.Errorf("unknown option %q (a unix address takes ?mode=0600)", k)
				}
			}
			m, err := strconv.ParseUint(q.Get("mode"), 8, 32)
			if err != nil || m > 0o777 {
				return l, fmt.Errorf("mode must be octal permissions such as 0600, got %q", q.Get("mode"))
			}
			l.Mode = uint32(m)
		}
		return l, nil
	}
	addr, err := parseHostPort(s, "write 8000, \"127.0.0.1:8000\", \"[::1]:8000\", \"unix:/path\" or \"udp:5353\"")
	if err != nil {
		return l, err
	}
	l.Network, l.Address = "tcp", addr
	return l, nil
}

// parseHostPort parses a port or host:port of a TCP or UDP address into
// the Address of a Listen: the host as net.IP prints it, "" for every
// interface ("", "::"). hint is how to write one, for the error of
// something that is no address at all.
func parseHostPort(s, hint string) (string, error) {
	host, port := "", s
	if strings.Contains(s, ":") {
		var err error
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("not an address: %q (%s)", s, hint)
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("port must be a number from 0 to 65535, got %q", port)
	}
	if host != "" {
		ip := net.ParseIP(host)
		if ip == nil || strings.Contains(host, "%") {
			return "", fmt.Errorf("host must be an IP address, got %q (use 127.0.0.1 for localhost)", host)
		}
		host = ip.String()
		if host == "::" {
			// "[::]:8000" is the socket "8000" binds (every interface,
			// IPv4 and IPv6): one address, one key.
			host = ""
		}
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10)), nil
}

// manifestDirOf is the absolute directory of manifest file file.
func manifestDirOf(file string) string {
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return filepath.Dir(file)
	}
	return dir
}
