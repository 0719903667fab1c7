package main

// The command line: the cobra command tree, how its errors become exit
// codes, and the spellings of the old flag package that keep working. Each
// command's own file holds its thin cobra layer (newXCmd: flags into an
// options struct) and the function that runs it with parsed options.

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/paddock-sh/paddock/internal/control"
	"github.com/paddock-sh/paddock/internal/suggest"
)

// Command groups, in the order help lists them.
const (
	groupRun   = "run"
	groupSteer = "steer"
)

// newRootCmd returns paddock's command tree, writing to stdout and stderr.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "paddock",
		Short: "A declarative process supervisor",
		Long: `paddock: a declarative process supervisor.

It runs the workers that YAML manifests declare and keeps them as declared.
The commands that steer a running supervisor talk to it through its control
socket (--socket, else $` + control.SocketEnv + `, else ` + control.DefaultSocketPath() + `);
they exit 1 when no supervisor answers. Run 'paddock help COMMAND' for a
command's flags; docs/cli/ in paddock's repository has them all.

Exit codes: 0 ok; 1 failure (invalid manifests, a failed run, workers that had
to be killed); 2 bad command line or unreadable paths; 3 paddock run stopped
because a critical app failed.`,
		Version: versionString(),
		// A word that is no command is an unknown command (with a
		// suggestion), not an argument of the root.
		Args: unknownCommand,
		RunE: func(c *cobra.Command, _ []string) error {
			// No command: the usage, as an error.
			fmt.Fprint(stderr, c.UsageString())
			return exitCode(exitUsage)
		},
		SilenceErrors:     true,
		SilenceUsage:      true,
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("paddock {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.AddGroup(
		&cobra.Group{ID: groupRun, Title: "Running apps:"},
		&cobra.Group{ID: groupSteer, Title: "Steering a running supervisor:"},
	)
	root.CompletionOptions.DisableDefaultCmd = true // newCompletionCmd instead
	root.SetHelpCommand(newHelpCmd(root))
	addGroup(root, groupRun, newRunCmd(stdout, stderr), newValidateCmd(stdout, stderr), newImportCmd(stdout, stderr))
	addGroup(root, groupSteer,
		newStatusCmd(stdout, stderr), newEventsCmd(stdout, stderr), newScaleCmd(stdout, stderr),
		newRestartCmd(stdout, stderr), newReloadCmd(stdout, stderr), newDiffCmd(stdout, stderr),
		newSendCmd(stdout, stderr), newSignalCmd(stdout, stderr), newLogsCmd(stdout, stderr),
		newStopCmd(stdout, stderr), newTopCmd(stdout, stderr))
	root.AddCommand(newCompletionCmd(root, stdout), newVersionCmd(stdout))
	return root
}

// addGroup adds the commands to root in the help group id.
func addGroup(root *cobra.Command, id string, cmds ...*cobra.Command) {
	for _, c := range cmds {
		c.GroupID = id
	}
	root.AddCommand(cmds...)
}

// run runs paddock's command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(singleDashLongFlags(root, args))
	cmd, err := root.ExecuteC()
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	}
	// Everything else is a bad command line: an unknown command or flag, a
	// flag's bad value, a wrong number of arguments.
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

// exitCode is an error that is only an exit code: the command printed
// what went wrong already.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

// exit turns a command's exit code into what a cobra RunE returns.
func exit(code int) error {
	if code == exitOK {
		return nil
	}
	return exitCode(code)
}

// unknownCommand is the root's argument check: any argument is a command
// that does not exist.
func unknownCommand(root *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() || c.Name() == "help" {
			names = append(names, c.Name())
			names = append(names, c.Aliases...)
		}
	}
	if near := suggest.Closest(args[0], names, 2); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return errors.New(msg)
}

// flagError words pflag's errors as Go's flag package did ("flag provided
// but not defined") and adds the closest flag the command has.
func flagError(c *cobra.Command, err error) error {
	var notExist *pflag.NotExistError
	if !errors.As(err, &notExist) {
		return err
	}
	name, spelt := notExist.GetSpecifiedName(), "--"+notExist.GetSpecifiedName()
	if group := notExist.GetSpecifiedShortnames(); group != "" {
		// -jsno: a long flag with one dash and a typo reads as a group of
		// shorthands; suggest from the whole word.
		name, spelt = group, "-"+group
	}
	msg := "flag provided but not defined: " + spelt
	if near := suggest.Closest(name, flagNames(c), 2); near != "" && len(name) > 1 {
		msg += fmt.Sprintf(" (did you mean --%s?)", near)
	}
	return errors.New(msg)
}

// flagNames returns the long names of the flags c takes, help included.
func flagNames(c *cobra.Command) []string {
	names := []string{"help"}
	c.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	c.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}

// singleDashLongFlags rewrites -name and -name=value, where name is a long
// flag of the command args run, to --name: Go's flag package, which
// paddock's command line used before cobra, took both spellings (-json,
// -socket PATH, -version, -help), and scripts may use them. Shorthands
// (-f, -o) and everything after "--" are left as they are, and so is the
// command line of shell completion.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return args
	}
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	names := flagNames(cmd)
	if cmd == root {
		names = append(names, "version")
	}
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && slices.Contains(names, name) {
			out[i] = "-" + a
		}
	}
	return out
}

// newHelpCmd returns `paddock help [COMMAND]`: the help of paddock or of
// the command, on stdout; an unknown command is a usage error.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Print the help of paddock or of a command",
		ValidArgsFunction: func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, c := range root.Commands() {
				if c.IsAvailableCommand() && strings.HasPrefix(c.Name(), toComplete) {
					names = append(names, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err == nil && len(rest) > 0 && cmd == root {
				err = unknownCommand(root, rest)
			}
			if err != nil {
				return err
			}
			cmd.InitDefaultHelpFlag() // as when it runs: its help shows --help
			return cmd.Help()
		},
	}
}
