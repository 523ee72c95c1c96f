#!/usr/bin/env bash
# checkpatch.pl --strict on each patch of patches/series, in order. A
# finding passes only when scripts/checkpatch-exceptions.txt lists its file
# and type. One line per patch; ends with the total.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ -x "$tree/scripts/checkpatch.pl" ] || die "no build/linux/scripts/checkpatch.pl (run: make tree)"
exceptions="$top/scripts/checkpatch-exceptions.txt"

passed=0 failed=0
while read -r p; do
	# Findings as "TYPE FILE message"; FILE is "-" for the commit message.
	findings=$(cd "$tree" && ./scripts/checkpatch.pl --strict --show-types --no-summary \
		--color=never "$patches_dir/$p" | awk '
		function emit() { if (type != "") print type, (file == "" ? "-" : file), msg; type = "" }
		/^(ERROR|WARNING|CHECK):[A-Z_0-9]+:/ {
			emit()
			split($0, f, ":"); type = f[2]
			msg = substr($0, length(f[1]) + length(f[2]) + 4); file = ""; next
		}
		type != "" && file == "" && match($0, /FILE: [^:]+:/) {
			file = substr($0, RSTART + 6, RLENGTH - 7); next
		}
		/^$/ { emit() }
		END { emit() }') || true
	bad=()
	while read -r type file msg; do
		[ -n "$type" ] || continue
		if grep -qE "^$file $type " "$exceptions"; then
			continue
		fi
		bad+=("$type $file: $msg")
	done <<<"$findings"
	if [ "${#bad[@]}" -eq 0 ]; then
		echo "ok   checkpatch $p"
		passed=$((passed + 1))
	else
		echo "FAIL checkpatch $p: ${#bad[@]} findings"
		printf '     %s\n' "${bad[@]}"
		failed=$((failed + 1))
	fi
done < <(series_list)

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
