#!/usr/bin/env bash
# make export: regenerate patches/ from the commits on build/linux's series
# branch. Deterministic: exporting an unchanged tree changes no byte.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"
[ "$(tgit symbolic-ref --short HEAD 2>/dev/null || true)" = "$series_branch" ] ||
	die "build/linux is not on branch '$series_branch': check it out before exporting"
dirty=$(tgit status --porcelain)
[ -z "$dirty" ] || die "build/linux has uncommitted changes; commit them first:
$dirty"

new=$(mktemp -d)
trap 'rm -rf "$new"' EXIT
format_series "$new"

mkdir -p "$patches_dir"
find "$patches_dir" -maxdepth 1 -type f \( -name '*.patch' -o -name series \) -delete
if compgen -G "$new/*" >/dev/null; then
	cp "$new"/* "$patches_dir"/
fi
dir_digest "$patches_dir" > "$(synced_digest_file)"
note "patches/: $(series_list | wc -l) patches and a cover letter from build/linux"
