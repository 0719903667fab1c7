package nodeipc

// A fast path for the lines that make up most of a busy channel: a
// worker's answer to a connection handed to it,
// {"cmd":"NODE_CLUSTER","ack":12,"accepted":true,"seq":7}, and other
// small cluster messages. They are flat objects of plain keys and simple
// values, which a single pass can recognise as valid JSON and take apart
// without encoding/json (which took about a tenth of the supervisor's CPU
// time per connection handed out).

// ScanFlat reports whether line is a flat JSON object: "{", then zero or
// more members "key":value separated by ",", then "}", with no white
// space, keys of ASCII letters, digits and "_", and values that are
// integers (-?[0-9]+, at most 18 digits), true, false, null, or strings
// of printable ASCII without escapes. Such a line is valid JSON. When
// visit is not nil it is called with each member's key and value (a
// string value with its quotes) in order, until it returns false; the
// slices are line's. A line that is not flat may still be valid JSON: the
// caller then takes the slow path.
func ScanFlat(line []byte, visit func(key, value []byte) bool) bool {
	n := len(line)
	if n < 2 || line[0] != '{' || line[n-1] != '}' {
		return false
	}
	i := 1
	if n == 2 {
		return true
	}
	for {
		// "key"
		if i >= n || line[i] != '"' {
			return false
		}
		k := i + 1
		for i = k; i < n && isKeyByte(line[i]); i++ {
		}
		if i == k || i+1 >= n || line[i] != '"' || line[i+1] != ':' {
			return false
		}
		key := line[k:i]
		i += 2
		// value
		v := i
		switch {
		case i >= n:
			return false
		case line[i] == '"':
			for i++; i < n && line[i] != '"'; i++ {
				if c := line[i]; c < 0x20 || c > 0x7e || c == '\\' {
					return false
				}
			}
			if i >= n {
				return false
			}
			i++
		case line[i] == '-' || isDigit(line[i]):
			if line[i] == '-' {
				i++
			}
			d := i
			for i < n && isDigit(line[i]) {
				i++
			}
			if i == d || i-d > 18 || (line[d] == '0' && i-d > 1) {
				return false
			}
		default:
			w := 0
			for _, lit := range [...]string{"true", "false", "null"} {
				if len(line)-i >= len(lit) && string(line[i:i+len(lit)]) == lit {
					w = len(lit)
					break
				}
			}
			if w == 0 {
				return false
			}
			i += w
		}
		if visit != nil && !visit(key, line[v:i]) {
			visit = nil
		}
		switch {
		case i == n-1:
			return true
		case line[i] == ',':
			i++
		default:
			return false
		}
	}
}

func isKeyByte(c byte) bool {
	return c == '_' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ParseInt returns the value of v, an integer as ScanFlat accepts it (at
// most 18 digits, so it cannot overflow); ok is false for any other value.
func ParseInt(v []byte) (n int64, ok bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// flatCmd reports whether line is a flat object (ScanFlat) and returns
// its "cmd" when that is a string, "" otherwise; of several "cmd" members
// the last counts, as for encoding/json and JSON.parse. The commands of
// Node's internal messages are constants, so that recognising them
// allocates nothing.
func flatCmd(line []byte) (cmd string, flat bool) {
	flat = ScanFlat(line, func(key, value []byte) bool {
		if string(key) != "cmd" {
			return true
		}
		cmd = ""
		if value[0] == '"' {
			switch s := value[1 : len(value)-1]; string(s) {
			case "NODE_CLUSTER":
				cmd = "NODE_CLUSTER"
			case "NODE_HANDLE_ACK":
				cmd = "NODE_HANDLE_ACK"
			case "NODE_HANDLE_NACK":
				cmd = "NODE_HANDLE_NACK"
			default:
				cmd = string(s)
			}
		}
		return true
	})
	return cmd, flat
}
