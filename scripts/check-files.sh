#!/bin/sh
# check-files.sh: fail when git tracks a build output: an executable binary
# (an ELF, PE or Mach-O file, or any executable file without a #! line) or a
# file larger than 1 MiB. `make test` runs it.
set -eu
cd "$(dirname "$0")/.."
max=1048576
# git ls-files -s: MODE OBJECT STAGE<TAB>PATH
git ls-files -s -z | tr '\0' '\n' | while IFS="$(printf '\t')" read -r meta path; do
	[ -f "$path" ] || continue
	mode=${meta%% *}
	size=$(wc -c <"$path")
	magic=$(head -c 4 "$path" | od -An -tx1 | tr -d ' \n')
	reason=""
	if [ "$size" -gt "$max" ]; then
		reason="larger than 1 MiB ($size bytes)"
	fi
	case "$magic" in
	7f454c46*) reason="an ELF binary" ;;
	4d5a*) reason="a PE binary" ;;
	feedface | feedfacf | cefaedfe | cffaedfe | cafebabe) reason="a Mach-O binary" ;;
	esac
	if [ -z "$reason" ] && [ "$mode" = 100755 ] && [ "$(head -c 2 "$path")" != "#!" ]; then
		reason="executable and not a script (no #! line)"
	fi
	if [ -n "$reason" ]; then
		echo "check-files: $path is tracked but is $reason: build outputs belong in .gitignore" >&2
		echo bad
	fi
done | grep -q bad && exit 1
exit 0
