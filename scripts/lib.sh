# shellcheck shell=bash
# Helpers shared by the harness scripts: paths, messages, the base record
# and the one definition of how the series is exported from the work tree.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$top/build"
# The tests point these at scratch copies; nothing else sets them.
patches_dir=${SERIES_PATCHES:-$top/patches}
tree=${SERIES_TREE:-$build_dir/linux}

# The branch the series lives on in $tree, and the tag of the base import.
series_branch=series
base_tag=base

# Settings from the user's or the system's git configuration must not
# change the exported text.
export GIT_CONFIG_NOSYSTEM=1

# Debian's python3 first: kernel tools (kunit.py, spdxcheck.py via
# checkpatch.pl) use the Debian packages make deps installs for it.
export PATH="/usr/bin:$PATH"

# A sub-make's flags (jobserver, ARCH=...) must not leak into kernel builds.
unset MAKEFLAGS MFLAGS MAKELEVEL

# ccache hashes paths below the project relative to it, so a fresh clone of
# the project reuses what an earlier one compiled.
export CCACHE_BASEDIR="$top"
# The kernel passes -fmacro-prefix-map=<its source tree>/=, which base_dir
# does not rewrite: left in the hash, it makes every clone's compile a
# miss. It maps each clone's own tree to "", so the objects are the same.
export CCACHE_IGNOREOPTIONS='-fmacro-prefix-map=*'
# Several architectures and configurations: more than ccache's 5 GB.
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-30G}

prog=$(basename "$0" .sh)

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

warn() {
	echo "$prog: warning: $*" >&2
}

# arches DIR: the architectures DIR has a file ARCH.conf for, sorted, one
# a line (kunit/, e2e/arches/).
arches() {
	find "$1" -maxdepth 1 -name '*.conf' -printf '%f\n' | sed 's/\.conf$//' | LC_ALL=C sort
}

note() {
	echo "$prog: $*"
}

# result ok|FAIL TEXT: print one check's line, "ok|FAIL $result_tag TEXT",
# and count it in $passed or $failed, which the caller starts at 0.
result() {
	echo "$1 ${result_tag:?} $2"
	if [ "$1" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# base_key KEY: the value of KEY in the BASE file.
base_key() {
	local v
	v=$(sed -n "s/^$1=//p" "$top/BASE")
	[ -n "$v" ] || die "BASE has no '$1=' line"
	echo "$v"
}

# installed_base_version: the version of the base package on this machine.
installed_base_version() {
	local pkg
	pkg=$(base_key package)
	dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null ||
		die "$pkg is not installed (run: make deps)"
}

tgit() {
	git -C "$tree" "$@"
}

# ccache_cc CROSS_COMPILE: the make option that compiles through ccache,
# or nothing where ccache is not installed.
ccache_cc() {
	if command -v ccache >/dev/null; then
		echo "CC=ccache ${1}gcc"
	fi
}

# ignore_like_upstream DIR: Debian's stanza at the end of the top-level
# .gitignore ("/*") hides every new file in the tree, since all top-level
# directories match it. The base commit keeps the file as shipped; the
# work tree's copy drops the stanza and git is told not to look at it.
ignore_like_upstream() {
	sed -i -e '\|^/\*$|d' -e '\|^!/debian/$|d' "$1/.gitignore"
	git -C "$1" update-index --skip-worktree .gitignore
	git -C "$1" check-ignore -q arch/new-file.c &&
		die "new files in $1 are still ignored by its .gitignore"
	return 0
}

# series_list: the patch files named by patches/series, in order.
series_list() {
	if [ ! -f "$patches_dir/series" ]; then
		if compgen -G "$patches_dir/*.patch" >/dev/null; then
			die "patches/ holds patches but no series file"
		fi
		return 0
	fi
	sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$patches_dir/series" | grep -v '^$' || true
}

# format_series OUTDIR: write the series held by $tree (base..series) to
# OUTDIR as format-patch files with a cover letter, and a quilt series
# file. The text depends only on the commits and the branch description:
# zero commit ids, no signature, fixed abbreviation, and the cover letter
# dated and signed as the tip commit's author.
format_series() {
	local out=$1 n ident
	n=$(tgit rev-list --count "$base_tag..$series_branch")
	mkdir -p "$out"
	[ "$n" -gt 0 ] || return 0
	mapfile -t ident < <(tgit log -1 --format='%an%n%ae%n%aI' "$series_branch")
	GIT_CONFIG_GLOBAL=/dev/null \
	GIT_COMMITTER_NAME=${ident[0]} GIT_COMMITTER_EMAIL=${ident[1]} \
	GIT_COMMITTER_DATE=${ident[2]} \
		tgit -c core.abbrev=12 format-patch --quiet --zero-commit \
			--no-signature --cover-letter \
			--cover-from-description=subject \
			-o "$out" "$base_tag..$series_branch" ||
		die "git format-patch failed in $tree"
	(cd "$out" && find . -maxdepth 1 -name '*.patch' ! -name '0000-cover-letter.patch' \
		-printf '%f\n' | LC_ALL=C sort) > "$out/series"
}

# dir_digest DIR: one checksum over the names and contents of DIR's files.
dir_digest() {
	(cd "$1" && find . -maxdepth 1 -type f -printf '%f\0' | LC_ALL=C sort -z |
		xargs -0r sha256sum) | sha256sum | cut -d' ' -f1
}

# The digest of patches/ as of the last make tree or make export: lets
# make tree tell a changed series (rebuild) from local work (keep).
synced_digest_file() {
	echo "$tree/.git/series-synced"
}
