package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paddock-sh/paddock/internal/revision"
	"github.com/paddock-sh/paddock/internal/supervisor"
)

// TestManifestModifiedGauge: paddock_manifest_modified is 1 with the
// files when manifest files differ from the commit, 0 when they match,
// absent when that could not be told or for a link revision; a file name
// that is not UTF-8 is replaced, not a panic.
func TestManifestModifiedGauge(t *testing.T) {
	const help = `# HELP paddock_manifest_modified For a git revision that runs: 1 when manifest files read differ from its commit (edited in place, or not committed; files lists them, relative to the work tree, comma-separated), 0 when they all match it; absent when that could not be told, or for a link revision.
# TYPE paddock_manifest_modified gauge
`
	cases := []struct {
		name string
		rev  revision.Revision
		want string
	}{
		{"modified", revision.Revision{ID: "3f2c", Kind: revision.KindGit, Source: "/r", Modified: "a.yaml,b.yaml"},
			help + `paddock_manifest_modified{files="a.yaml,b.yaml",kind="git",revision="3f2c"} 1` + "\n"},
		{"clean", revision.Revision{ID: "3f2c", Kind: revision.KindGit, Source: "/r"},
			help + `paddock_manifest_modified{files="",kind="git",revision="3f2c"} 0` + "\n"},
		{"not UTF-8", revision.Revision{ID: "3f2c", Kind: revision.KindGit, Source: "/r", Modified: "\xff.yaml"},
			help + "paddock_manifest_modified{files=\"\uFFFD.yaml\",kind=\"git\",revision=\"3f2c\"} 1\n"},
		{"unknown", revision.Revision{ID: "3f2c", Kind: revision.KindGit, Source: "/r", ModifiedUnknown: true}, ""},
		{"link", revision.Revision{ID: "rev-\xff", Kind: revision.KindLink, Source: "/r/current"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New(func(context.Context) (supervisor.Status, error) {
				return supervisor.Status{Manifests: supervisor.ManifestsStatus{Revision: c.rev}}, nil
			})
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(c.want), "paddock_manifest_modified"); err != nil {
				t.Error(err)
			}
			if _, err := m.Registry().Gather(); err != nil {
				t.Error(err)
			}
		})
	}
}
