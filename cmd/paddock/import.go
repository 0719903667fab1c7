package main

// paddock import: a manifest from a PM2 ecosystem file or a supervisord
// configuration (the converters are internal/importer's).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/importer"
)

// importOptions are paddock import's flags.
type importOptions struct {
	env         string
	node        string
	nodeTimeout time.Duration
}

// newImportCmd returns `paddock import` and its two commands.
func newImportCmd(stdout, stderr io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "import pm2|supervisord FILE",
		Short: "Print a manifest converted from a PM2 ecosystem file or a supervisord configuration",
		Long: `Print on stdout a paddock manifest equivalent to FILE, a PM2 ecosystem file
or a supervisord configuration. Every option of FILE is either converted (its
name in a comment after the field) or named in a comment that says why paddock
has no equivalent and what to use instead. Check the result with paddock
validate. See docs/migrating-from-pm2.md and docs/migrating-from-supervisord.md.

Exit codes: 0 printed; 1 FILE cannot be converted (nothing printed); 2 usage
errors or an unreadable FILE.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprint(stderr, c.UsageString())
			return exitCode(exitUsage)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	var o importOptions
	pm2 := &cobra.Command{
		Use:   "pm2 [flags] FILE",
		Short: "Convert a PM2 ecosystem file (.js, .cjs, .mjs, .json, .yaml, .yml)",
		Long: `Convert a PM2 ecosystem file (ecosystem.config.js, .cjs, .mjs, process.json,
process.yml) into a paddock manifest, printed on stdout. A JavaScript file (and
a .json file that is not strict JSON, which PM2 reads as JavaScript) is
evaluated by node (--node), without a shell, within --node-timeout: it runs
as pm2 would run it, with your rights. --env NAME merges each app's
env_NAME over its env, as pm2 start --env NAME does.

Exit codes: 0 printed; 1 FILE cannot be converted (nothing printed); 2 usage
errors or an unreadable FILE.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return exit(runImportPM2(c.Context(), o, args[0], stdout, stderr))
		},
	}
	pm2.Flags().StringVar(&o.env, "env", "", "merge each app's env_`NAME` over its env (as pm2 start --env NAME)")
	pm2.Flags().StringVar(&o.node, "node", "node", "the node `program` that evaluates JavaScript ecosystem files")
	pm2.Flags().DurationVar(&o.nodeTimeout, "node-timeout", importer.DefaultNodeTimeout, "how long node may take to evaluate the file")
	sv := &cobra.Command{
		Use:   "supervisord FILE",
		Short: "Convert a supervisord configuration (supervisord.conf and its [include] files)",
		Long: `Convert a supervisord configuration (supervisord.conf, and the files its
[include] section names) into a paddock manifest, printed on stdout. Each
[program:x] becomes an app; %(ENV_x)s expressions take their values from
this command's environment, as supervisord took them from its own.

Exit codes: 0 printed; 1 FILE cannot be converted (nothing printed); 2 usage
errors or an unreadable FILE.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return exit(runImportSupervisord(args[0], stdout, stderr))
		},
	}
	c.AddCommand(pm2, sv)
	return c
}

// runImportPM2 runs paddock import pm2 FILE.
func runImportPM2(ctx context.Context, o importOptions, file string, stdout, stderr io.Writer) int {
	if ctx == nil {
		ctx = context.Background()
	}
	m, err := importer.ImportPM2(ctx, file, importer.Node{Path: o.node, Timeout: o.nodeTimeout}, importer.PM2Options{Env: o.env})
	return printImport("pm2", m, err, stdout, stderr)
}

// runImportSupervisord runs paddock import supervisord FILE.
func runImportSupervisord(file string, stdout, stderr io.Writer) int {
	host, _ := os.Hostname()
	m, err := importer.ImportSupervisord(file, importer.SupervisordOptions{Environ: os.Environ(), Hostname: host})
	return printImport("supervisord", m, err, stdout, stderr)
}

// printImport writes the converted manifest, or the error and its exit
// code.
func printImport(kind string, m *importer.Manifest, err error, stdout, stderr io.Writer) int {
	var out []byte
	if err == nil {
		out, err = m.YAML()
	}
	if err != nil {
		fmt.Fprintf(stderr, "paddock import %s: %v\n", kind, err)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return exitUsage
		}
		return exitFailure
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "paddock import %s: %v\n", kind, err)
		return exitFailure
	}
	return exitOK
}
