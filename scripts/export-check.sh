#!/usr/bin/env bash
# make export-check: fail, naming the commits, when build/linux holds work
# that patches/ does not (or the other way round).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"

now=$(mktemp -d)
trap 'rm -rf "$now"' EXIT
format_series "$now"

problems=0
problem() {
	echo "$prog: $*" >&2
	problems=$((problems + 1))
}

# A patch's text without its file name and "[PATCH n/N]" numbering, so a
# commit is found in patches/ even when another one was added before it.
normalized() {
	sed -e '1,/^$/s/^Subject: \[[^]]*\] /Subject: /' "$1" | sha256sum | cut -d' ' -f1
}

declare -A have=()
for f in "$patches_dir"/*.patch; do
	[ -e "$f" ] || continue
	[ "$(basename "$f")" = 0000-cover-letter.patch ] && continue
	have[$(normalized "$f")]=$(basename "$f")
done

mapfile -t commits < <(tgit rev-list --reverse "$base_tag..$series_branch")
i=0
declare -A matched=()
while read -r f; do
	c=${commits[$i]}
	i=$((i + 1))
	h=$(normalized "$now/$f")
	if [ -n "${have[$h]:-}" ]; then
		matched[${have[$h]}]=1
	else
		problem "commit not exported: $(tgit log -1 --format='%h %s' "$c")"
	fi
done < "$now/series"

for f in "${have[@]}"; do
	[ -n "${matched[$f]:-}" ] || problem "patches/$f is not in build/linux (run: make tree, after exporting any work)"
done

if [ "$problems" -eq 0 ] && ! diff -rq "$now" "$patches_dir" >/dev/null; then
	problem "patches/ differs from the export of build/linux in order, cover letter or series file:"
	diff -r "$now" "$patches_dir" | head -n 20 >&2 || true
fi

dirty=$(tgit status --porcelain --ignored)
if [ -n "$dirty" ]; then
	problem "build/linux has uncommitted or ignored files (new files that the kernel's .gitignore hides need git add -f):"
	echo "$dirty" | head -n 20 >&2
fi

if [ "$problems" -ne 0 ]; then
	echo "$prog: build/linux and patches/ differ ($problems findings): make export, then commit patches/" >&2
	exit 1
fi
note "patches/ holds all of build/linux's series"
