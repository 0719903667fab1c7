// Package k8sschema checks the Kubernetes files under deploy/ against the
// Kubernetes API's own Go types (k8s.io/api), strictly: a field the API
// does not have (a misspelling such as `readinesProbe`, a field at the
// wrong level) or a value of the wrong type fails, as the API server
// would refuse it, here, without a cluster. It is a module of its own so
// that paddock's module does not depend on k8s.io/api; `make test` runs it
// (make k8s-schema).
//
// What paddock must agree with in those files (paths, ports, probes,
// grace period, entrypoint) is checked by cmd/paddock's TestDeployKubernetes;
// the kustomization, by `kubectl kustomize` there.
package k8sschema

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// deployDir holds the Kubernetes files, from this directory.
const deployDir = "../../../deploy/kubernetes"

// object returns an empty object of the API type for apiVersion and kind,
// or nil for one these files are not expected to hold.
func object(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Service":
		return &corev1.Service{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	}
	return nil
}

// document is one YAML document of a file.
type document struct {
	where string // file and document number
	data  []byte
}

// documents returns every document of every .yaml file in dir but the
// kustomization (not an API object).
func documents(t *testing.T, dir string) []document {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML files in %s (%v)", dir, err)
	}
	var docs []document
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for i := 1; ; i++ {
			d, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if len(bytes.TrimSpace(d)) == 0 {
				continue
			}
			docs = append(docs, document{where: fmt.Sprintf("%s: document %d", filepath.Base(f), i), data: d})
		}
	}
	return docs
}

// decodeStrict decodes a document into its API type, refusing unknown
// and duplicate fields and values of the wrong type.
func decodeStrict(d document) (any, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(d.data, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", d.where, err)
	}
	obj := object(meta.APIVersion, meta.Kind)
	if obj == nil {
		return nil, fmt.Errorf("%s: %s %s is not a kind these files are checked for (add it to object)", d.where, meta.APIVersion, meta.Kind)
	}
	if err := yaml.UnmarshalStrict(d.data, obj); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.where, meta.Kind, err)
	}
	return obj, nil
}

// TestDeployFilesMatchTheAPI decodes every object under deploy/kubernetes
// strictly into its k8s.io/api type.
func TestDeployFilesMatchTheAPI(t *testing.T) {
	kinds := map[string]int{}
	for _, d := range documents(t, deployDir) {
		obj, err := decodeStrict(d)
		if err != nil {
			t.Error(err)
			continue
		}
		kinds[fmt.Sprintf("%T", obj)]++
	}
	for _, want := range []string{"*v1.ConfigMap", "*v1.Deployment", "*v1.Service"} {
		if kinds[want] == 0 {
			t.Errorf("no %s under %s: %v", want, deployDir, kinds)
		}
	}
}

// TestStrictDecodingRefuses: what the check exists for is refused (each
// case is a change to deployment.yaml).
func TestStrictDecodingRefuses(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(deployDir, "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"misspelled field", "readinessProbe:", "readinesProbe:", `unknown field "readinesProbe"`},
		{"field at the wrong level", "terminationGracePeriodSeconds:", "template2: {}\n      terminationGracePeriodSeconds:", `unknown field`},
		{"wrong type", "terminationGracePeriodSeconds: ", "terminationGracePeriodSeconds: thirty #", "cannot unmarshal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !bytes.Contains(orig, []byte(c.from)) {
				t.Fatalf("deployment.yaml has no %q", c.from)
			}
			changed := bytes.Replace(orig, []byte(c.from), []byte(c.to), 1)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "deployment.yaml"), changed, 0o644); err != nil {
				t.Fatal(err)
			}
			var errs []string
			for _, d := range documents(t, dir) {
				if _, err := decodeStrict(d); err != nil {
					errs = append(errs, err.Error())
				}
			}
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), c.want) {
				t.Errorf("errors %q, want one with %q", errs, c.want)
			}
		})
	}
}
