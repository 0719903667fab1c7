package manifest_test

import (
	"testing"

	"github.com/paddock-sh/paddock/manifest"
)

// TestParseListenUDP: "udp:" before a port or host:port, written as for
// TCP, is a UDP address; every way of writing one socket has one Key, and
// TCP and UDP on one port are two sockets. What is no host:port after
// "udp:" is refused with how to write one.
func TestParseListenUDP(t *testing.T) {
	tests := []struct {
		in, address, err string
		port             int
	}{
		{in: "udp:5353", address: ":5353", port: 5353},
		{in: "udp::5353", address: ":5353", port: 5353},
		{in: "udp:[::]:53", address: ":53", port: 53},
		{in: "udp:0.0.0.0:5353", address: "0.0.0.0:5353", port: 5353},
		{in: "udp:127.0.0.1:0", address: "127.0.0.1:0", port: 0},
		{in: "udp:[::1]:53", address: "[::1]:53", port: 53},
		{in: "udp:[::ffff:127.0.0.1]:53", address: "127.0.0.1:53", port: 53},
		{in: "udp:", err: "a udp address is a port or host:port (udp:5353, udp:127.0.0.1:5353, udp:[::1]:5353); unix datagram sockets are not supported"},
		{in: "udp:/run/dns.sock", err: "a udp address is a port or host:port (udp:5353, udp:127.0.0.1:5353, udp:[::1]:5353); unix datagram sockets are not supported"},
		{in: "udp:./dns.sock", err: "a udp address is a port or host:port (udp:5353, udp:127.0.0.1:5353, udp:[::1]:5353); unix datagram sockets are not supported"},
		{in: "udp:65536", err: `port must be a number from 0 to 65535, got "65536"`},
		{in: "udp:127.0.0.1:-1", err: `port must be a number from 0 to 65535, got "-1"`},
		{in: "udp:localhost:53", err: `host must be an IP address, got "localhost" (use 127.0.0.1 for localhost)`},
		{in: "udp:[::1", err: `not an address: "[::1" (write udp:5353, "udp:127.0.0.1:5353" or "udp:[::1]:5353")`},
		{in: "udp:unix:/x", err: `port must be a number from 0 to 65535, got "/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l, err := manifest.ParseListen(tt.in, "/srv")
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("ParseListen(%q) = %+v, %v; want error %q", tt.in, l, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseListen(%q): %v", tt.in, err)
			}
			if l.Network != "udp" || l.Address != tt.address || l.Port() != tt.port || l.Raw != tt.in || l.Key() != "udp:"+tt.address {
				t.Errorf("ParseListen(%q) = %+v (port %d, key %s), want udp %s port %d", tt.in, l, l.Port(), l.Key(), tt.address, tt.port)
			}
		})
	}
	tcp, _ := manifest.ParseListen("5353", "/srv")
	udp, _ := manifest.ParseListen("udp:5353", "/srv")
	if tcp.Key() == udp.Key() {
		t.Errorf("TCP and UDP on port 5353 have one key %s", tcp.Key())
	}
}
