package main

// paddock completion, and what the scripts it prints complete beyond
// commands and flags: app names and APP/WORKER ids, asked of the running
// supervisor through `paddock __complete` (cobra's hidden command).

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/paddock-sh/paddock/internal/control"
)

// completionTimeout bounds how long completing an app name waits for the
// supervisor: a stuck socket must not hang the shell's Tab.
const completionTimeout = time.Second

// completionShells are the shells `paddock completion` prints a script for.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

// newCompletionCmd returns `paddock completion SHELL`, which prints the
// completion script of root for SHELL.
func newCompletionCmd(root *cobra.Command, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print the script that makes SHELL complete paddock's commands, flags, and the
names of the apps (and APP/WORKER ids) of the running supervisor, asked
through its control socket (--socket or $` + control.SocketEnv + ` on the command line
being completed); nothing is offered when no supervisor answers.

  bash:        source <(paddock completion bash)          # in ~/.bashrc
               (or: paddock completion bash > /etc/bash_completion.d/paddock)
  zsh:         paddock completion zsh > "${fpath[1]}/_paddock"
               (compinit must be enabled: autoload -U compinit; compinit)
  fish:        paddock completion fish > ~/.config/fish/completions/paddock.fish
  powershell:  paddock completion powershell | Out-String | Invoke-Expression
               (in $PROFILE, to keep it)`,
		ValidArgs: completionShells,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(_ *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(stdout, true)
			case "zsh":
				return root.GenZshCompletion(stdout)
			case "fish":
				return root.GenFishCompletion(stdout, true)
			}
			return root.GenPowerShellCompletionWithDesc(stdout)
		},
	}
}

// completeTargets completes a command's first argument, an APP, or with
// workers an APP[/WORKER], from the running supervisor.
func completeTargets(workers bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return targets(cmd, toComplete, workers), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeAppFlag completes a flag whose value is an app's name.
func completeAppFlag(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return targets(cmd, toComplete, false), cobra.ShellCompDirectiveNoFileComp
}

// signalNames are the signals `paddock signal` completes, those sent to
// workers most.
var signalNames = []cobra.Completion{"HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "KILL", "STOP", "CONT", "WINCH"}

// completeSignalArgs completes paddock signal's APP[/WORKER] SIGNAL.
func completeSignalArgs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return targets(cmd, toComplete, true), cobra.ShellCompDirectiveNoFileComp
	case 1:
		var out []cobra.Completion
		for _, s := range signalNames {
			if strings.HasPrefix(s, strings.ToUpper(toComplete)) {
				out = append(out, s)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// targets returns the completions of toComplete from the status of the
// supervisor on cmd's --socket (else $PADDOCK_SOCKET, else the default
// path): the names of its apps, or with workers and a toComplete of the
// form APP/, the APP/WORKER ids of that app's workers. It returns nothing
// when no supervisor answers within completionTimeout.
func targets(cmd *cobra.Command, toComplete string, workers bool) []cobra.Completion {
	sock, _ := cmd.Flags().GetString("socket")
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	st, err := control.NewClient(control.SocketPath(sock)).Status(ctx)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	if app, _, ok := strings.Cut(toComplete, "/"); ok && workers {
		for _, w := range st.Workers {
			id := w.App + "/" + strconv.Itoa(w.ID)
			if w.App == app && strings.HasPrefix(id, toComplete) {
				out = append(out, cobra.CompletionWithDesc(id, w.State))
			}
		}
		return out
	}
	for _, a := range st.Apps {
		if strings.HasPrefix(a.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(a.Name, fmt.Sprintf("%d/%d ready", a.Ready, a.Instances)))
		}
	}
	return out
}
