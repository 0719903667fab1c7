package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxSourceSize is the largest configuration file read (as manifests).
const MaxSourceSize = 8 << 20

// DefaultNodeTimeout bounds the evaluation of a JavaScript ecosystem file.
const DefaultNodeTimeout = 30 * time.Second

// ErrNoNode is returned when a JavaScript ecosystem file needs node and
// none is found.
var ErrNoNode = errors.New("node is not installed (not found in PATH)")

// Node evaluates JavaScript ecosystem files.
type Node struct {
	// Path is the node program; empty: "node" found in PATH.
	Path string
	// Timeout bounds one evaluation; zero: DefaultNodeTimeout.
	Timeout time.Duration
}

// evalScript is what node runs (from -e): it loads the file named by its
// first argument as PM2 does (require, falling back to import for ES
// modules; a .json file evaluated as a JavaScript expression, which PM2's
// JSON files may rely on: comments, unquoted keys) and writes its exports
// as JSON on stdout.
const evalScript = `
const path = require('path');
const file = path.resolve(process.argv[1]);
function load() {
  if (/\.json$/i.test(file)) {
    const src = require('fs').readFileSync(file, 'utf8');
    return require('vm').runInNewContext('(' + src + '\n)', {}, {filename: file, timeout: 5000});
  }
  try {
    return require(file);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE' || /\.mjs$/i.test(file))) {
      return import(require('url').pathToFileURL(file).href).then(m => m.default !== undefined ? m.default : m);
    }
    throw e;
  }
}
Promise.resolve().then(load).then(v => {
  // require() of an ES module (Node >= 20.19) gives its namespace.
  if (v && typeof v === 'object' && v[Symbol.toStringTag] === 'Module' && v.default !== undefined) v = v.default;
  process.stdout.write(JSON.stringify(v === undefined ? null : v));
}, e => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exitCode = 1;
});
`

// Eval runs file (JavaScript, or a PM2 JSON file that is not strict JSON)
// with node and returns its module.exports decoded, numbers as
// json.Number. No shell is involved; node's stderr is part of the error.
func (n Node) Eval(ctx context.Context, file string) (any, error) {
	prog := n.Path
	if prog == "" {
		prog = "node"
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w: install Node.js, or convert the file to JSON (node -e 'console.log(JSON.stringify(require(\"./%s\")))' > ecosystem.json) and import that", file, ErrNoNode, filepath.Base(file))
	}
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultNodeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", file, err)
	}
	cmd := exec.CommandContext(ctx, path, "-e", evalScript, abs)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitWriter{w: &stdout, n: MaxSourceSize}
	cmd.Stderr = &limitWriter{w: &stderr, n: 64 << 10}
	cmd.WaitDelay = time.Second // a timer or a child the file left must not hold us
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("evaluate %s with %s: gave no answer within %s (a server or timer the file starts keeps node running?)", file, path, timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("evaluate %s with %s: %s", file, path, msg)
	}
	v, err := decodeJSON(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: node's output: %w", file, err)
	}
	return v, nil
}

// limitWriter keeps at most n bytes, then fails the writes.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("more than %d bytes of output", MaxSourceSize)
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// decodeJSON decodes one JSON value with numbers as json.Number.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// readSource reads file, refusing what is not a regular file or larger
// than MaxSourceSize.
func readSource(file string) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > MaxSourceSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", file, MaxSourceSize>>20)
	}
	return data, nil
}

// LoadPM2 reads a PM2 ecosystem file: JavaScript (.js, .cjs, .mjs)
// evaluated with node; JSON (.json; a file that is not strict JSON is
// evaluated with node as PM2 does); YAML (.yaml, .yml).
func LoadPM2(ctx context.Context, file string, node Node) (any, error) {
	data, err := readSource(file)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".js", ".cjs", ".mjs":
		return node.Eval(ctx, file)
	case ".json":
		v, jerr := decodeJSON(data)
		if jerr == nil {
			return v, nil
		}
		v, err := node.Eval(ctx, file)
		if errors.Is(err, ErrNoNode) {
			return nil, fmt.Errorf("%s: not strict JSON (%v), and %w to read it as PM2 does", file, jerr, err)
		}
		return v, err
	case ".yaml", ".yml":
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		// Through JSON, so that every kind of source has the same types.
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return decodeJSON(b)
	}
	return nil, fmt.Errorf("%s: not a PM2 ecosystem file: name it .js, .cjs, .mjs, .json, .yaml or .yml", file)
}

// ImportPM2 reads a PM2 ecosystem file and converts it.
func ImportPM2(ctx context.Context, file string, node Node, opts PM2Options) (*Manifest, error) {
	v, err := LoadPM2(ctx, file, node)
	if err != nil {
		return nil, err
	}
	return ConvertPM2(v, filepath.Base(file), opts)
}
