package importer

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// iniSection is a [section] of a supervisord file, its keys in file
// order.
type iniSection struct {
	Name string
	File string
	Line int
	Keys []*iniKey
}

// iniKey is one key = value of a section. Name is lower-case, as
// supervisord's parser makes it; Value has its continuation lines joined
// with "\n" and inline comments removed.
type iniKey struct {
	Name  string
	Value string
	Line  int
}

// Get returns the key named name, or nil.
func (s *iniSection) Get(name string) *iniKey {
	for _, k := range s.Keys {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// IniError is a syntax error in an INI file, at a line.
type IniError struct {
	File string
	Line int
	Msg  string
}

func (e *IniError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// parseINI reads an INI file as supervisord's parser (Python's
// configparser) does: [section] headers; key = value or key: value, the
// key lower-cased; a line that starts with blanks continues the value
// above; lines starting with ; or # are comments, and so is the rest of a
// line from a ; or # that follows a blank. A key outside a section, a
// section or a key given twice, and a line that is none of these are
// errors naming the line.
func parseINI(file string, data []byte) ([]*iniSection, error) {
	var sections []*iniSection
	seen := map[string]int{}
	var cur *iniSection
	var last *iniKey
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimRight(raw, "\r")
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == ';' || trimmed[0] == '#' {
			last = nil
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == nil {
				return nil, &IniError{file, n, "indented line continues no value (unexpected indentation)"}
			}
			last.Value += "\n" + stripInlineComment(trimmed)
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, &IniError{file, n, "section header without ]"}
			}
			name := line[1:end]
			if rest := strings.TrimSpace(stripInlineComment(line[end+1:])); rest != "" {
				return nil, &IniError{file, n, fmt.Sprintf("text after the section header: %q", rest)}
			}
			if first, dup := seen[name]; dup {
				return nil, &IniError{file, n, fmt.Sprintf("section [%s] already declared on line %d", name, first)}
			}
			seen[name] = n
			cur = &iniSection{Name: name, File: file, Line: n}
			sections = append(sections, cur)
			last = nil
			continue
		}
		eq := strings.IndexAny(line, "=:")
		if eq <= 0 {
			return nil, &IniError{file, n, fmt.Sprintf("not a section, a key = value or a comment: %q", short(line))}
		}
		if cur == nil {
			return nil, &IniError{file, n, "key before any [section]"}
		}
		key := strings.ToLower(strings.TrimSpace(line[:eq]))
		if k := cur.Get(key); k != nil {
			return nil, &IniError{file, n, fmt.Sprintf("key %s already set on line %d in [%s]", key, k.Line, cur.Name)}
		}
		last = &iniKey{Name: key, Value: strings.TrimSpace(stripInlineComment(line[eq+1:])), Line: n}
		cur.Keys = append(cur.Keys, last)
	}
	return sections, nil
}

// stripInlineComment removes a ; or # comment that follows a blank.
func stripInlineComment(s string) string {
	for i := 1; i < len(s); i++ {
		if (s[i] == ';' || s[i] == '#') && (s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimRight(s[:i], " \t")
		}
	}
	return s
}

// expand replaces supervisord's %(name)s expressions in s with vars, as
// Python's % operator does: %(name)s, %(name)d, with flags, width and
// precision (%(process_num)02d); %% is a %. An unknown name or a bad
// expression is an error.
func expand(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '%':
			b.WriteByte(s[i])
		case i+1 < len(s) && s[i+1] == '%':
			b.WriteByte('%')
			i++
		default:
			v, end, err := expandOne(s, i, vars)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i = end
		}
	}
	return b.String(), nil
}

// expandOne expands the expression at s[i] ('%'), returning its value and
// the index of its last byte.
func expandOne(s string, i int, vars map[string]string) (string, int, error) {
	if i+1 >= len(s) || s[i+1] != '(' {
		return "", 0, fmt.Errorf("%% not followed by (name) or %%: write %%%% for a %%")
	}
	end := strings.IndexByte(s[i+2:], ')')
	if end < 0 {
		return "", 0, fmt.Errorf("%%( without )")
	}
	name := s[i+2 : i+2+end]
	j := i + 2 + end + 1
	k := j + len(s[j:]) - len(strings.TrimLeft(s[j:], "#0- +"))
	flags := s[j:k]
	w := k + len(s[k:]) - len(strings.TrimLeft(s[k:], "0123456789"))
	width, _ := strconv.Atoi(s[k:w])
	if w < len(s) && s[w] == '.' {
		w++
		w += len(s[w:]) - len(strings.TrimLeft(s[w:], "0123456789"))
	}
	if w >= len(s) || strings.IndexByte("sdir", s[w]) < 0 {
		return "", 0, fmt.Errorf("%%(%s) without a conversion (s or d)", name)
	}
	if width > 1000 || w-k > 4 {
		return "", 0, fmt.Errorf("%%(%s): the width is too large", name)
	}
	v, ok := vars[name]
	if !ok {
		return "", 0, fmt.Errorf("%%(%s)s: no such expansion (supervisord has program_name, process_num, group_name, host_node_name, numprocs, here, ENV_x)", name)
	}
	v, err := format(v, flags, width, s[w])
	if err != nil {
		return "", 0, fmt.Errorf("%%(%s)%c: %w", name, s[w], err)
	}
	return v, w, nil
}

// format writes v as Python's % does with flags, width and conversion
// (s or r: as is; d or i: a number, zero-padded with the 0 flag).
func format(v, flags string, width int, conv byte) (string, error) {
	if conv != 's' && conv != 'r' {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "", fmt.Errorf("%q is not a number", v)
		}
		v = strconv.Itoa(n)
		if strings.Contains(flags, "0") && !strings.Contains(flags, "-") && len(v) < width {
			sign := ""
			if n < 0 {
				sign, v = "-", v[1:]
			}
			v = sign + strings.Repeat("0", width-len(v)-len(sign)) + v
		}
	}
	if pad := width - len(v); pad > 0 {
		if strings.Contains(flags, "-") {
			return v + strings.Repeat(" ", pad), nil
		}
		return strings.Repeat(" ", pad) + v, nil
	}
	return v, nil
}

// parseEnvironment reads supervisord's environment= value:
// KEY="value",KEY2=value2 (pairs separated by commas, values in double or
// single quotes when they hold commas, blanks or quotes; the quotes are
// removed, nothing inside is interpreted).
func parseEnvironment(s string) (*Env, error) {
	env := &Env{}
	sc := &envScanner{s: s}
	for {
		sc.blanks()
		if sc.i >= len(s) {
			return env, nil
		}
		key, val, err := sc.pair()
		if err != nil {
			return nil, fmt.Errorf("environment: %w", err)
		}
		env.Put(key, val)
		sc.blanks()
		if sc.i < len(s) && s[sc.i] != ',' {
			return nil, fmt.Errorf("environment: %s: a value with blanks needs quotes: %s=\"...\"", key, key)
		}
		sc.i++
	}
}

// envScanner reads environment= pairs.
type envScanner struct {
	s string
	i int
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (sc *envScanner) blanks() {
	for sc.i < len(sc.s) && isBlank(sc.s[sc.i]) {
		sc.i++
	}
}

// word reads up to a blank or one of stop.
func (sc *envScanner) word(stop string) string {
	start := sc.i
	for sc.i < len(sc.s) && !isBlank(sc.s[sc.i]) && strings.IndexByte(stop, sc.s[sc.i]) < 0 {
		sc.i++
	}
	return sc.s[start:sc.i]
}

// pair reads KEY=value or KEY="value".
func (sc *envScanner) pair() (string, string, error) {
	start := sc.i
	key := sc.word("=,")
	sc.blanks()
	if key == "" || sc.i >= len(sc.s) || sc.s[sc.i] != '=' {
		return "", "", fmt.Errorf("expected KEY=value at %q", short(sc.s[start:]))
	}
	sc.i++
	sc.blanks()
	if sc.i < len(sc.s) && (sc.s[sc.i] == '"' || sc.s[sc.i] == '\'') {
		q := sc.s[sc.i]
		end := strings.IndexByte(sc.s[sc.i+1:], q)
		if end < 0 {
			return "", "", fmt.Errorf("%s: no closing %c", key, q)
		}
		val := sc.s[sc.i+1 : sc.i+1+end]
		sc.i += end + 2
		return key, val, nil
	}
	return key, sc.word(","), nil
}
