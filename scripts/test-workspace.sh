#!/usr/bin/env bash
# Tests of the series workspace itself: export is deterministic and
# round-trips, export-check names unexported commits, make tree keeps a
# developer's work and names a patch that does not apply, quilt can
# apply the series, and make e2e refuses an architecture or a boot it has
# no data for. Changes happen in a scratch clone of build/linux, never
# in build/linux itself. One line per check; ends with the total.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"

tmp=$(mktemp -d "$build_dir/test-workspace.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0 failed=0
check() {
	local name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		echo "ok   workspace: $name"
		passed=$((passed + 1))
	else
		echo "FAIL workspace: $name"
		sed 's/^/     /' "$tmp/out" | tail -n 20
		failed=$((failed + 1))
	fi
}

format_twice_identical() {
	format_series "$tmp/e1" && format_series "$tmp/e2" && diff -r "$tmp/e1" "$tmp/e2"
}

# A scratch clone of build/linux at the series tip, for the checks below
# that change a tree.
scratch="$tmp/linux"
make_scratch() {
	git clone -q --shared --branch "$series_branch" "$tree" "$scratch" &&
		git -C "$scratch" fetch -q origin "refs/tags/$base_tag:refs/tags/$base_tag" &&
		git -C "$scratch" config series.baseversion "$(tgit config series.baseversion)" &&
		git -C "$scratch" config "branch.$series_branch.description" \
			"$(tgit config "branch.$series_branch.description")" &&
		ignore_like_upstream "$scratch" &&
		dir_digest "$patches_dir" > "$scratch/.git/series-synced"
}

add_scratch_commit() {
	mkdir -p "$scratch/lib/scratch" &&
		echo "/* unexported work */" > "$scratch/lib/scratch/new.c" &&
		git -C "$scratch" add lib/scratch/new.c &&
		git -C "$scratch" -c user.name=test -c user.email=test@localhost \
			commit -q -m "scratch: work that was never exported"
}

export_check_names_commit() {
	if SERIES_TREE=$scratch "$top/scripts/export-check.sh" >"$tmp/ec" 2>&1; then
		echo "export-check passed with an unexported commit"
		return 1
	fi
	grep -F "scratch: work that was never exported" "$tmp/ec" ||
		{ cat "$tmp/ec"; echo "export-check did not name the commit"; return 1; }
}

tree_keeps_work() {
	local before
	before=$(git -C "$scratch" rev-parse HEAD)
	SERIES_TREE=$scratch "$top/scripts/prepare-tree.sh" &&
		[ "$(git -C "$scratch" rev-parse HEAD)" = "$before" ]
}

# Break the context of a later patch: make tree must stop there, naming
# the patch, the file and the base version, and exit non-zero.
broken_patch_named() {
	local victim version
	git -C "$scratch" reset -q --hard "origin/$series_branch"
	victim=$(series_list | sed -n 2p)
	[ -n "$victim" ] || { echo "needs a series of two or more patches"; return 1; }
	mkdir -p "$tmp/broken"
	cp "$patches_dir"/* "$tmp/broken/"
	# Corrupt the first context line of the victim's first hunk.
	awk 'done == 0 && /^@@/ { hunk = 1; print; next }
	     hunk && done == 0 && /^ / { print " CONTEXT THE BASE DOES NOT HAVE"; done = 1; next }
	     { print }' "$patches_dir/$victim" > "$tmp/broken/$victim"
	version=$(installed_base_version)
	if SERIES_TREE=$scratch SERIES_PATCHES=$tmp/broken \
		"$top/scripts/prepare-tree.sh" >"$tmp/pt" 2>&1; then
		echo "make tree succeeded with a broken $victim"
		return 1
	fi
	cat "$tmp/pt"
	grep "error: patch $victim does not apply to .* $version (file: [a-zA-Z]" "$tmp/pt"
}

quilt_applies_series() {
	local q="$tmp/quilt" f
	mkdir -p "$q"
	tgit archive "$base_tag" | tar -x -C "$q"
	(cd "$q" && QUILT_PATCHES="$patches_dir" QUILT_PC="$tmp/quilt-pc" quilt push -q -a) || return 1
	while read -r f; do
		tgit show "$series_branch:$f" | cmp -s - "$q/$f" ||
			{ echo "quilt result differs from build/linux in $f"; return 1; }
	done < <(tgit diff --name-only "$base_tag" "$series_branch")
}

# e2e_refuses WANT ENV...: run-e2e.sh, with the environment ENV, stops
# before building anything, with an error that says WANT.
e2e_refuses() {
	local want=$1 out rc=0
	shift
	out=$(env "$@" "$top/scripts/run-e2e.sh" 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || { echo "run-e2e.sh with $* exited 0"; return 1; }
	grep -qF -- "$want" <<<"$out" || { echo "run-e2e.sh with $* did not say '$want': $out"; return 1; }
}

check "export is deterministic" format_twice_identical
check "patches/ is the export of build/linux (make export-check)" "$top/scripts/export-check.sh"
check "scratch clone of build/linux" make_scratch
check "scratch commit" add_scratch_commit
check "export-check names an unexported commit" export_check_names_commit
check "make tree keeps unexported work" tree_keeps_work
check "make tree names a patch that does not apply" broken_patch_named
check "quilt applies patches/series to the base" quilt_applies_series
check "make e2e names an architecture it has no data for" \
	e2e_refuses "E2E_ARCH=sparc: no e2e/arches/sparc.conf (there are: arm64 x86_64)" E2E_ARCH=sparc
check "make e2e names a boot its architecture lacks" \
	e2e_refuses "E2E_BOOTS: no arm64 boot 'production/hidden' (one of: agent/virt)" \
	E2E_ARCH=arm64 E2E_BOOTS=production/hidden

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
