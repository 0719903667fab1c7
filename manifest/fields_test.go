package manifest

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestAppFieldsMatchTags: the decoding table appFields has exactly the
// manifest keys of App, its yaml tags.
func TestAppFieldsMatchTags(t *testing.T) {
	var tags []string
	typ := reflect.TypeFor[App]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			tags = append(tags, name)
		}
	}
	var keys []string
	for k := range appFields {
		keys = append(keys, k)
	}
	sort.Strings(tags)
	sort.Strings(keys)
	if !slices.Equal(tags, keys) {
		t.Errorf("App yaml tags %q\nappFields keys  %q", tags, keys)
	}
}

// TestBackoffKeysMatchTags: the backoff decoder knows every yaml tag of
// Backoff.
func TestBackoffKeysMatchTags(t *testing.T) {
	typ := reflect.TypeFor[Backoff]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		src := "apps:\n  web:\n    exec: x\n    backoff:\n      " + name + ": 1s\n"
		if _, err := Decode("t.yaml", []byte(src)); err != nil {
			t.Errorf("backoff key %s: %v", name, err)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := map[string]string{
		"instance":    ` (did you mean "instances"?)`,
		"Instances":   ` (did you mean "instances"?)`,
		"killTimout":  ` (did you mean "killTimeout"?)`,
		"exe":         ` (did you mean "exec"?)`,
		"environment": "",
		"x":           "",
	}
	for in, want := range tests {
		if got := didYouMean(in); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
