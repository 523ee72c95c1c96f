#!/usr/bin/env bash
# make tree: build/linux as a git repository holding the base import (tag
# "base") and one commit per patch of patches/series on branch "series".
#
# An existing tree is reused. It is rebuilt from patches/ only when patches/
# changed since the tree was last synced and the tree holds no work of its
# own; a tree with unexported work is never overwritten.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

package=$(base_key package)
tarball=$(base_key tarball)
verified=$(base_key verified)
installed=$(installed_base_version)
[ -f "$tarball" ] || die "$tarball is missing although $package $installed is installed"

if [ "$installed" != "$verified" ]; then
	warn "the series was verified on $package $verified; this machine has $installed: trying it anyway"
fi

import_base() {
	local tmp mtime
	note "importing $package $installed from $tarball"
	rm -rf "$tree"
	tmp="$tree.tmp"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	tar -xf "$tarball" -C "$tmp" --strip-components=1 ||
		die "could not extract $tarball"
	mtime=$(date -u -d "@$(stat -c %Y "$tarball")" +%Y-%m-%dT%H:%M:%SZ)
	git -C "$tmp" init -q -b "$series_branch"
	git -C "$tmp" config series.baseversion "$installed"
	# Debian's top-level .gitignore ignores everything at the top level,
	# and the kernel's ignores dotfiles: add all files regardless.
	git -C "$tmp" add -A -f .
	GIT_AUTHOR_NAME="$package" GIT_AUTHOR_EMAIL="$package@debian.invalid" \
	GIT_COMMITTER_NAME="$package" GIT_COMMITTER_EMAIL="$package@debian.invalid" \
	GIT_AUTHOR_DATE=$mtime GIT_COMMITTER_DATE=$mtime \
		git -C "$tmp" commit -q --no-verify -m "Import $package $installed" \
			-m "Unpacked from $tarball with all files added, ignored or not."
	git -C "$tmp" tag "$base_tag"
	ignore_like_upstream "$tmp"
	mv "$tmp" "$tree"
}

# cover_description FILE: the branch description ("subject", blank line,
# body) that makes format-patch write FILE's subject and text again.
cover_description() {
	awk '
	hdr && /^$/ { hdr = 0; body = 1; next }
	hdr && /^Subject: / { subj = substr($0, 10); insubj = 1; next }
	hdr && insubj && /^[ \t]/ { sub(/^[ \t]+/, " "); subj = subj $0; next }
	hdr { insubj = 0; next }
	body && /^.+ \([0-9]+\):$/ && prev == "" { exit }
	body { text = text $0 "\n"; prev = $0 }
	BEGIN { hdr = 1 }
	END {
		sub(/^\[[^]]*\] /, "", subj)
		sub(/\n+$/, "", text)
		printf "%s\n\n%s\n", subj, text
	}' "$1"
}

apply_series() {
	local p n=0 log files
	tgit checkout -q -f -B "$series_branch" "$base_tag"
	tgit clean -q -fdx
	if [ -f "$patches_dir/0000-cover-letter.patch" ]; then
		tgit config "branch.$series_branch.description" \
			"$(cover_description "$patches_dir/0000-cover-letter.patch")"
	fi
	log=$(mktemp)
	while read -r p; do
		n=$((n + 1))
		[ -f "$patches_dir/$p" ] || die "patches/series names $p, which is not in patches/"
		if ! GIT_COMMITTER_NAME="series" GIT_COMMITTER_EMAIL="series@localhost" \
			tgit am -q --committer-date-is-author-date "$patches_dir/$p" >"$log" 2>&1; then
			cat "$log" >&2
			files=$(sed -n -e 's/^error: patch failed: \(.*\):[0-9]*$/\1/p' \
				-e 's/^error: \(.*\): does not exist in index$/\1/p' \
				-e 's/^error: \(.*\): already exists in index$/\1/p' "$log" |
				sort -u | paste -sd' ')
			tgit am --abort >/dev/null 2>&1 || true
			rm -f "$log"
			die "patch $p does not apply to $package $installed (file: ${files:-see git am output above})"
		fi
	done < <(series_list)
	rm -f "$log"
	dir_digest "$patches_dir" > "$(synced_digest_file)"
	note "build/linux: $package $installed + $n patches"
}

if [ -d "$tree/.git" ] && [ "$(tgit config series.baseversion || true)" = "$installed" ]; then
	now=$(mktemp -d)
	trap 'rm -rf "$now"' EXIT
	format_series "$now"
	patches_digest=$(dir_digest "$patches_dir")
	tree_digest=$(dir_digest "$now")
	synced=$(cat "$(synced_digest_file)" 2>/dev/null || true)
	dirty=$(tgit status --porcelain)

	if [ "$tree_digest" = "$patches_digest" ] && [ -z "$dirty" ]; then
		note "build/linux is up to date with patches/"
		exit 0
	fi
	if [ "$tree_digest" = "$synced" ] && [ -z "$dirty" ]; then
		note "patches/ changed: re-applying the series"
		apply_series
		exit 0
	fi
	if [ "$patches_digest" = "$synced" ]; then
		note "build/linux holds work not yet in patches/ (make export-check names it); using it as it is"
		exit 0
	fi
	die "both patches/ and build/linux changed since the last sync: export or drop the work in build/linux (make export-check), then run make tree again"
fi

if [ -d "$tree/.git" ]; then
	"$top/scripts/export-check.sh" >&2 ||
		die "build/linux is on another base ($(tgit config series.baseversion || echo unknown)) and holds unexported work; export it or remove build/linux"
fi
import_base
apply_series
