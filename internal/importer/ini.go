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
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		if i+1 >= len(s) || s[i+1] != '(' {
			return "", fmt.Errorf("%% not followed by (name) or %%: write %%%% for a %%")
		}
		end := strings.IndexByte(s[i+2:], ')')
		if end < 0 {
			return "", fmt.Errorf("%%( without )")
		}
		name := s[i+2 : i+2+end]
		j := i + 2 + end + 1
		k := j
		for k < len(s) && strings.IndexByte("#0- +", s[k]) >= 0 {
			k++
		}
		flags := s[j:k]
		w := k
		for w < len(s) && s[w] >= '0' && s[w] <= '9' {
			w++
		}
		width, _ := strconv.Atoi(s[k:w])
		if w < len(s) && s[w] == '.' {
			w++
			for w < len(s) && s[w] >= '0' && s[w] <= '9' {
				w++
			}
		}
		if w >= len(s) || strings.IndexByte("sdir", s[w]) < 0 {
			return "", fmt.Errorf("%%(%s) without a conversion (s or d)", name)
		}
		if width > 1000 {
			return "", fmt.Errorf("%%(%s): width %d is too large", name, width)
		}
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("%%(%s)s: no such expansion (supervisord has program_name, process_num, group_name, host_node_name, numprocs, here, ENV_x)", name)
		}
		if s[w] != 's' && s[w] != 'r' {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", fmt.Errorf("%%(%s)%c: %q is not a number", name, s[w], v)
			}
			v = strconv.Itoa(n)
			if strings.Contains(flags, "0") && !strings.Contains(flags, "-") && len(v) < width {
				if n < 0 {
					v = "-" + strings.Repeat("0", width-len(v)) + v[1:]
				} else {
					v = strings.Repeat("0", width-len(v)) + v
				}
			}
		}
		if len(v) < width {
			if strings.Contains(flags, "-") {
				v += strings.Repeat(" ", width-len(v))
			} else {
				v = strings.Repeat(" ", width-len(v)) + v
			}
		}
		b.WriteString(v)
		i = w
	}
	return b.String(), nil
}

// parseEnvironment reads supervisord's environment= value:
// KEY="value",KEY2=value2 (pairs separated by commas, values in double or
// single quotes when they hold commas, blanks or quotes; the quotes are
// removed, nothing inside is interpreted).
func parseEnvironment(s string) (*Env, error) {
	env := &Env{}
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return env, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' {
			i++
		}
		key := s[start:i]
		skip()
		if key == "" || i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("environment: expected KEY=value at %q", short(s[start:]))
		}
		i++
		skip()
		var val string
		if i < len(s) && (s[i] == '"' || s[i] == '\'') {
			q := s[i]
			end := strings.IndexByte(s[i+1:], q)
			if end < 0 {
				return nil, fmt.Errorf("environment: %s: no closing %c", key, q)
			}
			val = s[i+1 : i+1+end]
			i += end + 2
		} else {
			start := i
			for i < len(s) && s[i] != ',' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' {
				i++
			}
			val = s[start:i]
		}
		env.Put(key, val)
		skip()
		if i < len(s) && s[i] != ',' {
			return nil, fmt.Errorf("environment: %s: a value with blanks needs quotes: %s=\"...\"", key, key)
		}
		i++
	}
}
