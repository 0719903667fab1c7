// Package docs_test checks the Markdown documentation of paddock: every
// relative link of README.md and of the pages under docs/ points to a file
// that exists and, when it names an anchor, to a heading of that file.
package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// root is the repository's root, seen from this package's directory.
const root = ".."

// pages returns README.md and every Markdown page under docs/, as paths
// relative to the root.
func pages(t *testing.T) []string {
	t.Helper()
	out := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	inlineCode = regexp.MustCompile("`[^`]*`")
	// link matches an inline Markdown link or image, [text](target), whose
	// text may span lines; the target has no spaces (an optional title
	// after a space is allowed and ignored).
	link    = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	heading = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	htmlID  = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	// notSlug is what GitHub drops from a heading's text to make its
	// anchor: everything but letters, digits, spaces, '-' and '_'.
	notSlug = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// prose returns the lines of a Markdown text outside fenced code blocks.
func prose(text string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		if fence.MatchString(l) {
			in = !in
			continue
		}
		if !in {
			out = append(out, l)
		}
	}
	return out
}

// Slug is the anchor GitHub gives a heading: its text lower-cased, code
// marks, punctuation and link targets dropped, spaces made '-'.
func Slug(h string) string {
	h = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(h, "$1")
	h = strings.ToLower(h)
	h = notSlug.ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// Anchors returns every anchor of a Markdown page: its headings' slugs,
// with GitHub's -1, -2... for repeated ones, and explicit <a id="...">.
func Anchors(text string) []string {
	var out []string
	seen := map[string]int{}
	for _, l := range prose(text) {
		if m := heading.FindStringSubmatch(l); m != nil {
			s := Slug(m[2])
			if n := seen[s]; n > 0 {
				out = append(out, fmt.Sprintf("%s-%d", s, n))
			} else {
				out = append(out, s)
			}
			seen[s]++
		}
		for _, m := range htmlID.FindAllStringSubmatch(l, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// Links returns the targets of a page's links that are neither absolute
// URLs nor in code.
func Links(text string) []string {
	body := strings.Join(prose(text), "\n")
	body = inlineCode.ReplaceAllString(body, "")
	var out []string
	for _, m := range link.FindAllStringSubmatch(body, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
			continue
		}
		out = append(out, target)
	}
	return out
}

// TestSlug: the anchors GitHub makes of the headings paddock's pages have.
func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Node.js cluster workers":         "nodejs-cluster-workers",
		"Watching it live: `paddock top`": "watching-it-live-paddock-top",
		"Under systemd":                   "under-systemd",
		"Signals, exit codes":             "signals-exit-codes",
		"`rollout.onStall`: keep or roll": "rolloutonstall-keep-or-roll",
		"A [link](x.md) in a heading":     "a-link-in-a-heading",
	} {
		if got := Slug(h); got != want {
			t.Errorf("Slug(%q) = %q, want %q", h, got, want)
		}
	}
	got := Anchors("# A\n```\n# not a heading\n```\n## A\n<a id=\"x\"></a>\n")
	if want := []string{"a", "a-1", "x"}; !slices.Equal(got, want) {
		t.Errorf("Anchors = %q, want %q", got, want)
	}
	got = Links("see [a\nb](docs/x.md#y), `[c](no.md)`, [d](https://e/f)\n```\n[g](h.md)\n```\n")
	if want := []string{"docs/x.md#y"}; !slices.Equal(got, want) {
		t.Errorf("Links = %q, want %q", got, want)
	}
}

// TestRelativeLinks: every relative link of README.md and docs/ names a
// file that exists, and an anchor of it that exists.
func TestRelativeLinks(t *testing.T) {
	anchors := map[string][]string{}
	anchorsOf := func(p string) ([]string, error) {
		if a, ok := anchors[p]; ok {
			return a, nil
		}
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return nil, err
		}
		anchors[p] = Anchors(string(b))
		return anchors[p], nil
	}
	checked := 0
	for _, page := range pages(t) {
		b, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range Links(string(b)) {
			checked++
			file, frag, _ := strings.Cut(target, "#")
			dest := page
			if file != "" {
				dest = filepath.Clean(filepath.Join(filepath.Dir(page), file))
			}
			if _, err := os.Stat(filepath.Join(root, dest)); err != nil {
				t.Errorf("%s: link %s: no such file %s", page, target, dest)
				continue
			}
			if frag == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			a, err := anchorsOf(dest)
			if err != nil {
				t.Errorf("%s: link %s: %v", page, target, err)
				continue
			}
			if !slices.Contains(a, frag) {
				t.Errorf("%s: link %s: %s has no heading with anchor #%s", page, target, dest, frag)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d relative links found: the link pattern is broken", checked)
	}
}
