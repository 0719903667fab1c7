package main

// -o json|yaml|wide (kubectl's habit) for status and events, and the
// formats it chooses: YAML with the field names of the JSON, and the wide
// line of an event that shows every field.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/paddock-sh/paddock/internal/control"
)

// The output formats -o takes; outputTable is the default, the table (or
// line) without -o.
const (
	outputTable = ""
	outputJSON  = "json"
	outputYAML  = "yaml"
	outputWide  = "wide"
)

// outputFormats are the values -o accepts.
var outputFormats = []string{outputJSON, outputYAML, outputWide}

// outputFlags are -o/--output and --json, which is -o json.
type outputFlags struct {
	output string
	json   bool
}

// add adds -o/--output and --json (described by jsonUsage) to c.
func (f *outputFlags) add(c *cobra.Command, jsonUsage string) {
	c.Flags().StringVarP(&f.output, "output", "o", "", "output format: "+strings.Join(outputFormats, ", ")+" (default: a table)")
	c.Flags().BoolVar(&f.json, "json", false, jsonUsage)
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}

// format returns the format the flags ask for; it prints a usage error for
// command name and returns false when they ask for none that exists or
// contradict each other.
func (f *outputFlags) format(stderr io.Writer, name string) (string, bool) {
	if f.output != outputTable && !slices.Contains(outputFormats, f.output) {
		fmt.Fprintf(stderr, "paddock %s: -o must be one of %s, got %q\nRun 'paddock %s --help' for usage.\n",
			name, strings.Join(outputFormats, ", "), f.output, name)
		return "", false
	}
	if f.json {
		if f.output != outputTable && f.output != outputJSON {
			fmt.Fprintf(stderr, "paddock %s: --json is -o json; it contradicts -o %s\n", name, f.output)
			return "", false
		}
		return outputJSON, true
	}
	return f.output, true
}

// writeDocument writes raw, a JSON document, as format (json or yaml).
func writeDocument(w io.Writer, format string, raw []byte) error {
	if format == outputJSON {
		_, err := w.Write(raw)
		return err
	}
	y, err := jsonToYAML(raw)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}

// jsonToYAML converts a JSON document to YAML in block style, with the
// same keys in the same order; numbers keep their text (no float
// rounding), and strings are quoted only where YAML would read them as
// something else.
func jsonToYAML(raw []byte) ([]byte, error) {
	var doc yaml.Node
	// JSON is YAML (in flow style): parsing it keeps order and text.
	if err := yaml.Unmarshal(yamlPrintable(raw), &doc); err != nil {
		return nil, fmt.Errorf("converting to YAML: %w", err)
	}
	blockStyle(&doc)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2) // as kubectl writes it
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("converting to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting to YAML: %w", err)
	}
	return b.Bytes(), nil
}

// yamlPrintable escapes, in the JSON document raw, the characters YAML
// does not allow unescaped but JSON does (DEL, the C1 controls, U+FFFE and
// U+FFFF: a worker's output line may hold them), and NEL, a line break to
// YAML that would fold into a space. They occur only inside strings, where
// \uXXXX means the same to both.
func yamlPrintable(raw []byte) []byte {
	ok := func(r rune) bool {
		return r != 0x7f && (r < 0x80 || r > 0x9f) && r != 0xfffe && r != 0xffff
	}
	if !bytes.ContainsFunc(raw, func(r rune) bool { return !ok(r) }) {
		return raw
	}
	var b bytes.Buffer
	for _, r := range string(raw) {
		if ok(r) {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.Bytes()
}

// blockStyle drops the flow style and quotes the JSON had from n and
// every node under it, for the encoder to choose plain YAML.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// eventWriter returns what prints an event in format: a line (the table
// format), a wide line, a line of JSON, or a YAML document.
func eventWriter(w io.Writer, format string) func(control.Event) error {
	switch format {
	case outputJSON:
		enc := json.NewEncoder(w)
		return func(e control.Event) error { return enc.Encode(e) }
	case outputYAML:
		return func(e control.Event) error {
			raw, err := json.Marshal(e)
			if err != nil {
				return err
			}
			y, err := jsonToYAML(raw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "---\n%s", y)
			return err
		}
	case outputWide:
		return func(e control.Event) error {
			_, err := fmt.Fprintln(w, formatEventWide(e))
			return err
		}
	}
	return func(e control.Event) error {
		_, err := fmt.Fprintln(w, formatEvent(e))
		return err
	}
}

// formatEventWide prints an event on one line with every field it has:
// its time (to the millisecond, with the zone), type and app/worker, then
// each other field as name=value, with the JSON's names and order; a
// value with spaces or quotes is quoted, a list or an object is JSON.
func formatEventWide(e control.Event) string {
	var b strings.Builder
	b.WriteString(e.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"))
	b.WriteString(" " + e.Type)
	if e.App != "" {
		b.WriteString(" " + e.App)
		if e.Worker != 0 {
			b.WriteString("/" + strconv.Itoa(e.Worker))
		}
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	_, _ = dec.Token() // {
	for dec.More() {
		key, _ := dec.Token()
		var val json.RawMessage
		if dec.Decode(&val) != nil {
			break
		}
		switch key {
		case "time", "type", "app", "worker":
			continue // at the start of the line
		}
		fmt.Fprintf(&b, " %s=%s", key, wideValue(val))
	}
	return b.String()
}

// wideValue prints a JSON value for formatEventWide: a string as it is
// unless it needs quotes, anything else as compact JSON.
func wideValue(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		var c bytes.Buffer
		if json.Compact(&c, v) != nil {
			return string(v)
		}
		return c.String()
	}
	if s == "" || strings.ContainsAny(s, " \t\"'=\\") || strconv.Quote(s) != `"`+s+`"` {
		return strconv.Quote(s)
	}
	return s
}

// writeStatusWide prints the status tables as writeStatus does, with the
// columns that only the JSON has otherwise: per app the running workers,
// whether it is critical or silent; per worker the CPU time, processes,
// connections handed out, listen addresses, health and sd_notify status.
func writeStatusWide(out io.Writer, st *control.StatusResponse, now time.Time) {
	writeStatusTables(out, st, now, true)
}

// appWideCells are the columns -o wide adds to the table of apps.
func appWideCells(a control.App) []string {
	return []string{strconv.Itoa(a.Running), yesNo(a.Critical), yesNo(a.Silent)}
}

// workerWideCells are the columns -o wide adds to the table of workers.
func workerWideCells(w control.Worker) []string {
	cpuTime, procs := "-", "-"
	if w.CPUSeconds != nil {
		cpuTime = formatCPUTime(*w.CPUSeconds)
	}
	if w.Processes != nil {
		procs = strconv.Itoa(*w.Processes)
	}
	health := dash(w.HealthAnswer)
	if w.HealthFailures > 0 {
		health = fmt.Sprintf("%d failed: %s", w.HealthFailures, health)
	}
	return []string{cpuTime, procs, strconv.FormatInt(w.HandedOut, 10), dash(strings.Join(w.Listen, ",")),
		health, dash(w.Status)}
}

// formatCPUTime prints CPU seconds as ps's TIME does, to the second:
// 0:07, 12:34, 2:03:04.
func formatCPUTime(s float64) string {
	d := time.Duration(s * float64(time.Second)).Truncate(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
