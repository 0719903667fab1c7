package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrUnclosedQuote is returned by SplitWords for a quote left open.
var ErrUnclosedQuote = errors.New("no closing quotation")

// SplitWords splits s into words as a POSIX shell's lexer does (Python's
// shlex.split, which supervisord uses for command=): blanks separate words,
// 'single quotes' keep everything, "double quotes" keep everything but \\,
// \", \$, \` and \newline, and a backslash outside quotes keeps the next
// character. Nothing is expanded and no operator (|, &&, >) means anything:
// they are words or parts of words, as for supervisord.
func SplitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			continue
		}
		inWord = true
		var err error
		switch c {
		case '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case '\'':
			i, err = singleQuoted(s, i, &cur)
		case '"':
			i, err = doubleQuoted(s, i, &cur)
		default:
			cur.WriteByte(c)
		}
		if err != nil {
			return nil, err
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// singleQuoted copies the text of the quote opened at s[i] and returns the
// index of its closing quote.
func singleQuoted(s string, i int, cur *strings.Builder) (int, error) {
	end := strings.IndexByte(s[i+1:], '\'')
	if end < 0 {
		return 0, ErrUnclosedQuote
	}
	cur.WriteString(s[i+1 : i+1+end])
	return i + 1 + end, nil
}

// doubleQuoted copies the text of the quote opened at s[i], a backslash
// escaping \\, \", \$, \` and a newline, and returns the index of its
// closing quote.
func doubleQuoted(s string, i int, cur *strings.Builder) (int, error) {
	for i++; i < len(s) && s[i] != '"'; i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
			i++
			if s[i] == '\n' {
				continue
			}
		}
		cur.WriteByte(s[i])
	}
	if i >= len(s) {
		return 0, ErrUnclosedQuote
	}
	return i, nil
}

// shellLike returns the shell syntax found in words (a pipe, a redirection,
// $VAR, &&, ;, a glob, ~), or "" when none: a program given them gets them
// as plain text.
func shellLike(words []string) string {
	for _, w := range words {
		for _, op := range []string{"|", "&&", ";", ">", "<", "$", "`", "*", "?"} {
			if strings.Contains(w, op) {
				return op
			}
		}
		if strings.HasPrefix(w, "~") {
			return "~"
		}
	}
	return ""
}

// isShell reports whether program is a shell that runs its -c argument.
func isShell(program string) bool {
	base := program[strings.LastIndexByte(program, '/')+1:]
	switch base {
	case "sh", "bash", "dash", "zsh", "ash", "ksh":
		return true
	}
	return false
}

// formatDuration writes d in Go's duration syntax, the manifest's, without
// zero tails (1m, not 1m0s).
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// millis reads a PM2 duration: a number of milliseconds (a number, or a
// string of digits), or a string with a unit ("10s", "1m", "1h").
func millis(v any) (time.Duration, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil || f < 0 || f > math.MaxInt64/float64(time.Millisecond) {
			return 0, fmt.Errorf("not a number of milliseconds: %v", x)
		}
		return time.Duration(f * float64(time.Millisecond)), nil
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return millis(json.Number(strconv.FormatFloat(n, 'f', -1, 64)))
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("not a duration: %q", x)
		}
		return d, nil
	}
	return 0, fmt.Errorf("not a duration: %v", display(v))
}

// size reads a PM2 or supervisord size: bytes, or a number with K, M or G
// (PM2 and supervisord both mean 1024s: PM2's "260M" is 260 MiB, as
// supervisord's "50MB"), into bytes.
func size(v any) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(display(v)))
	s = strings.TrimSuffix(s, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("not a size: %q", display(v))
	}
	return n * mult, nil
}

// formatSize writes n bytes with the largest unit (Ki, Mi, Gi) that
// divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		bytes  int64
	}{{"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n != 0 && n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// display writes a decoded value as a comment shows it: strings as they
// are, everything else as JSON.
func display(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// short is display cut to a length a comment line can hold.
func short(v any) string {
	s := strings.ReplaceAll(display(v), "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// truthy reads a PM2 boolean: true, or "true".
func truthy(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		return strconv.ParseBool(x)
	}
	return false, fmt.Errorf("not true or false: %s", display(v))
}

// stringList reads a list of strings: a JSON array (its numbers written as
// they are), or a string split into words as a shell's lexer would.
func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return SplitWords(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			switch e.(type) {
			case string, json.Number, bool:
				out = append(out, display(e))
			default:
				return nil, fmt.Errorf("not a list of strings: %s", display(v))
			}
		}
		return out, nil
	case json.Number, bool:
		return []string{display(x)}, nil
	}
	return nil, fmt.Errorf("not a list of strings: %s", display(v))
}
