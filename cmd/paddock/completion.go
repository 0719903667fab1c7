package main

import (
	"fmt"
	"io"
	"time"

	"github.com/paddock-sh/paddock/internal/control"
)

// commands lists the commands, for help and completion.
var commands = []string{"run", "validate", "status", "events", "scale", "restart", "reload", "diff",
	"send", "signal", "logs", "stop", "top", "completion", "version", "help"}

// The completion scripts complete commands, flags, and app names (from
// the running supervisor, through the hidden command __apps).
const bashCompletion = `# bash completion for paddock: source <(paddock completion bash)
_paddock() {
    local cur prev words cword
    _init_completion 2>/dev/null || { cur="${COMP_WORDS[COMP_CWORD]}"; cword=$COMP_CWORD; words=("${COMP_WORDS[@]}"); }
    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "%[1]s" -- "$cur"))
        return
    fi
    case "${words[1]}" in
        run|validate|diff)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--socket --log-format --log-level --watch --reload-debounce --metrics-addr --json --help" -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi ;;
        completion)
            COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
        scale|restart|send|signal|logs|events)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--socket --json --wait --timeout --app -f --lines --help" -- "$cur"))
            elif [[ $prev == signal || ( ${words[1]} == signal && $cword -eq 3 ) ]]; then
                COMPREPLY=($(compgen -W "HUP INT QUIT TERM USR1 USR2 KILL STOP CONT" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$(paddock __apps 2>/dev/null)" -- "$cur"))
            fi ;;
    esac
}
complete -F _paddock paddock
`

const zshCompletion = `#compdef paddock
# zsh completion for paddock: paddock completion zsh > "${fpath[1]}/_paddock"
_paddock() {
    local -a cmds
    cmds=(%[1]s)
    if (( CURRENT == 2 )); then
        _describe 'command' cmds
        return
    fi
    case $words[2] in
        run|validate|diff) _files ;;
        completion) _values 'shell' bash zsh fish ;;
        scale|restart|send|signal|logs|events)
            local -a apps
            apps=(${(f)"$(paddock __apps 2>/dev/null)"})
            _describe 'app' apps ;;
    esac
}
compdef _paddock paddock
`

const fishCompletion = `# fish completion for paddock: paddock completion fish > ~/.config/fish/completions/paddock.fish
complete -c paddock -f
complete -c paddock -n '__fish_use_subcommand' -a '%[1]s'
complete -c paddock -n '__fish_seen_subcommand_from run validate diff' -F
complete -c paddock -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'
complete -c paddock -n '__fish_seen_subcommand_from scale restart send signal logs events' -a '(paddock __apps 2>/dev/null)'
complete -c paddock -l socket -d 'control socket' -r
complete -c paddock -l json -d 'JSON output'
`

func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("completion", "completion bash|zsh|fish", stderr)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "paddock completion: want bash, zsh or fish")
		return exitUsage
	}
	var script string
	switch fs.Arg(0) {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		script = fishCompletion
	default:
		fmt.Fprintf(stderr, "paddock completion: want bash, zsh or fish, got %q\n", fs.Arg(0))
		return exitUsage
	}
	names := ""
	for i, c := range commands {
		if i > 0 {
			names += " "
		}
		names += c
	}
	fmt.Fprintf(stdout, script, names)
	return exitOK
}

// cmdApps prints the running apps' names, one per line, for completion.
// It is silent when no supervisor answers.
func cmdApps(args []string, stdout, stderr io.Writer) int {
	fs, sock := newClientFlagSet("__apps", "__apps", stderr)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	ctx, cancel := clientContext(2 * time.Second)
	defer cancel()
	st, err := control.NewClient(control.SocketPath(*sock)).Status(ctx)
	if err != nil {
		return exitFailure
	}
	for _, a := range st.Apps {
		fmt.Fprintln(stdout, a.Name)
	}
	return exitOK
}
