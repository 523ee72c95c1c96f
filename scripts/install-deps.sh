#!/usr/bin/env bash
# Install the Debian packages listed in scripts/debian-packages.txt that are
# not installed yet, then download and unpack, under build/deps, those of
# other architectures that scripts/debian-foreign-packages.txt lists and
# build/deps lacks. Quick and silent when all of them are there.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
list="$here/debian-packages.txt"

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')
mapfile -t foreign < <(sed -e 's/#.*//' "$here/debian-foreign-packages.txt" | awk 'NF')

missing=()
for pkg in "${wanted[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$pkg")
done
unpacked=()
for line in "${foreign[@]}"; do
	read -r arch pkg <<<"$line"
	[ -e "$top/build/deps/$arch/$pkg/.unpacked" ] || unpacked+=("$arch $pkg")
done

if [ "${#missing[@]}" -eq 0 ] && [ "${#unpacked[@]}" -eq 0 ]; then
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ "${#missing[@]}" -gt 0 ]; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null ||
			{ echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2; exit 1; }
		sudo=(sudo)
	fi
	echo "install-deps: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -qq ||
		{ echo "install-deps: apt-get update failed" >&2; exit 1; }
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		{ echo "install-deps: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
fi

# The foreign packages, through an apt state of their own under build/deps
# (ARCH's package lists, a cache, no dpkg status), so that this machine's
# dpkg and apt configuration stay as they are: nothing is installed, and
# no architecture is added.
for line in "${unpacked[@]}"; do
	read -r arch pkg <<<"$line"
	dest="$top/build/deps/$arch/$pkg"
	state="$top/build/deps/$arch/apt"
	apt=(apt-get -qq -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
		-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
		-o Dir::State::status=/dev/null -o Debug::NoLocking=1)
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	if ! "${apt[@]}" update >"$dest.log" 2>&1; then
		cat "$dest.log" >&2
		echo "install-deps: apt-get update of the $arch package lists failed (into build/deps/$arch/apt)" >&2
		exit 1
	fi
	echo "install-deps: downloading $pkg:$arch, unpacking it into build/deps/$arch/$pkg"
	rm -rf "$dest"
	mkdir -p "$dest"
	if ! (cd "$top/build/deps/$arch" && "${apt[@]}" download "$pkg") >>"$dest.log" 2>&1; then
		cat "$dest.log" >&2
		echo "install-deps: apt-get download $pkg:$arch failed" >&2
		exit 1
	fi
	deb=$(find "$top/build/deps/$arch" -maxdepth 1 -name "${pkg}_*_$arch.deb" | sort | tail -n 1)
	[ -n "$deb" ] || { echo "install-deps: apt-get download $pkg:$arch left no ${pkg}_*_$arch.deb" >&2; exit 1; }
	dpkg-deb -x "$deb" "$dest" ||
		{ echo "install-deps: dpkg-deb -x $deb failed" >&2; exit 1; }
	touch "$dest/.unpacked"
done
