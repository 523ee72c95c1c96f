#!/bin/bash
# make gates: the checks a patch series passes before it is sent upstream,
# over every patch in build/linux (base..series):
#   - each patch, in order: checkpatch.pl --strict (scripts/check-patches.sh)
#     and an x86_64 build of the directories the series touches, plus one
#     for the architecture of each path in gates/per-patch-arches.txt the
#     patch touches (riscv64, arm64), so that the series is bisectable;
#   - at the tip, W=1 and C=1 (sparse) add no warning in the touched files
#     compared with the base;
#   - defconfig and allnoconfig builds for x86_64, i386, riscv64 and arm64,
#     and the defconfigs of um and riscv32, each with the series' options
#     (gates/);
#   - x86_64 with Debian's own configuration (linux-config-6.1);
#   - at the tip, the Documentation/ directories that hold a page the
#     series touches, or one that pulls kernel-doc from a file it touches,
#     build with no Sphinx or kernel-doc warning that names a file the
#     series touches, that the base does not also give;
#   - GATES_RANDCONFIGS (default 10) seeded randconfigs per architecture
#     (GATES_ARCHES, default all four), seeds from GATES_SEED (default 1)
#     on, the series' options kept reachable with KCONFIG_ALLCONFIG;
#   - shellcheck on the harness.
# A build is `make prepare` and then the directories the series touches,
# incrementally, in kept directories under build/gates with ccache; a
# build fails on an error and on any warning in a file the series touches.
# Prints one line per check and ends with "N passed, N failed".
#
# Usage: run-gates.sh [CHECK...], where a CHECK is one of patches, wc,
# builds, debian, docs, randconfig and shellcheck (default: all of them).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(patches wc builds debian docs randconfig shellcheck)
randconfigs=${GATES_RANDCONFIGS:-10}
seed0=${GATES_SEED:-1}
read -ra rand_arches <<<"${GATES_ARCHES:-x86_64 i386 riscv arm64}"
[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"

out="$build_dir/gates"
src="$out/src"
mkdir -p "$out"

passed=0 failed=0 result_tag=gates

# The series' commits, and what it touches: its C files, and the
# directories to build (those holding a touched source file or Makefile,
# without subdirectories of another one; no headers, docs or tools).
mapfile -t commits < <(tgit rev-list --reverse "$base_tag..$series_branch")
[ ${#commits[@]} -gt 0 ] || die "build/linux has no commits on $series_branch"
mapfile -t touched < <(tgit diff --name-only "$base_tag" "$series_branch")
mapfile -t touched_c < <(printf '%s\n' "${touched[@]}" | grep '\.c$' | grep -v '^tools/')
# A touched Makefile adds its directory only when no touched source lies
# below it: drivers/Makefile, which only names a new subdirectory, must
# not make the gate build all of drivers/.
mapfile -t dirs < <(printf '%s\n' "${touched[@]}" |
	grep -E '\.c$|/Makefile$' | grep -vE '^(tools|include|Documentation)/|/include/' |
	awk '{ d = $0; sub(/\/[^\/]*$/, "", d); if ($0 ~ /\/Makefile$/) mk[d] = 1; else src[d] = 1 }
	END {
		for (m in mk) { keep = 1; for (c in src) if (index(c "/", m "/") == 1 && c != m) keep = 0; if (keep) src[m] = 1 }
		for (c in src) print c
	}' | sort -u |
	awk '{ for (i = 1; i <= n; i++) if (index($0 "/", d[i] "/") == 1) next; d[++n] = $0; print }')

# A worktree of build/linux to check out each commit in: the series tree
# itself stays as the developer left it.
# A tree that make tree imported again leaves a stale worktree behind.
if [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" != "$src" ]; then
	rm -rf "$src"
	tgit worktree prune
	tgit worktree add -q --detach "$src" "$base_tag" >/dev/null
fi

# arch_of NAME: make's ARCH=, the cross compiler and the arch/ directory.
arch_of() {
	case $1 in
	x86_64) echo "x86_64 - x86" ;;
	i386) echo "i386 - x86" ;;
	arm64) echo "arm64 aarch64-linux-gnu- arm64" ;;
	riscv) echo "riscv riscv64-linux-gnu- riscv" ;;
	riscv32) echo "riscv riscv64-linux-gnu- riscv" ;;
	um) echo "um - -" ;;
	*) die "no gate architecture '$1'" ;;
	esac
}

# gmake OBJ ARCH MAKE-ARGS...: make in the worktree for one architecture.
gmake() {
	local obj=$1 arch=$2 karch cross srcarch cc
	shift 2
	read -r karch cross srcarch <<<"$(arch_of "$arch")"
	[ "$cross" != - ] || cross=
	cc=$(ccache_cc "$cross")
	make -C "$src" O="$obj" ARCH="$karch" ${cross:+CROSS_COMPILE="$cross"} \
		${cc:+"$cc"} -j"$(nproc)" "$@"
}

# fragment ARCH: the series' options for ARCH, in one file.
fragment() {
	local f="$out/$1.fragment"
	cat "$top/gates/common.config" "$top/gates/$1.config" >"$f"
	echo "$f"
}

# configure OBJ ARCH KIND [SEED]: write OBJ/.config; KIND is defconfig,
# allnoconfig or randconfig, each with the series' options.
configure() {
	local obj=$1 arch=$2 kind=$3 seed=${4:-} frag
	mkdir -p "$obj"
	frag=$(fragment "$arch")
	case $kind in
	defconfig)
		gmake "$obj" "$arch" defconfig &&
			"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$frag" &&
			gmake "$obj" "$arch" olddefconfig
		;;
	allnoconfig)
		KCONFIG_ALLCONFIG="$frag" gmake "$obj" "$arch" allnoconfig
		;;
	randconfig)
		KCONFIG_SEED="$seed" KCONFIG_ALLCONFIG="$frag" gmake "$obj" "$arch" randconfig
		;;
	esac
}

# build_dirs OBJ ARCH LOG [MAKE-ARGS...]: make prepare, then the touched
# directories that apply to ARCH, with MAKE-ARGS. The touched objects are removed first, so that their
# warnings are seen again (ccache replays them) on incremental builds.
build_dirs() {
	local obj=$1 arch=$2 log=$3 srcarch want=() d f
	shift 3
	read -r _ _ srcarch <<<"$(arch_of "$arch")"
	for d in "${dirs[@]}"; do
		case $d in
		arch/"$srcarch"/* | arch/"$srcarch") want+=("$d/") ;;
		arch/*) ;;
		*) want+=("$d/") ;;
		esac
	done
	for f in "${touched_c[@]}"; do
		rm -f "$obj/${f%.c}.o"
	done
	gmake "$obj" "$arch" prepare >"$log" 2>&1 &&
		gmake "$obj" "$arch" "$@" "${want[@]}" >>"$log" 2>&1
}

# touched_warnings LOG: the warnings of LOG (compiler, sparse, kernel-doc,
# Sphinx's "WARNING:" and "CRITICAL:", with or without a line number)
# that are in files the series touches, without line numbers.
touched_warnings() {
	local f
	for f in "${touched[@]}"; do
		grep -iE "(^|/)$f(:[0-9]+)?(:[0-9]+)?: (warning|error|critical):" "$1" |
			sed -E "s,^.*(^|/)($f)(:[0-9]+)?(:[0-9]+)?: ,\2: ," || true
	done | sort -u
}

# gate NAME OBJ ARCH LOG [MAKE-ARGS...]: one build check (the .config is
# in place): fails on an error or on a warning in a touched file.
gate() {
	local name=$1 obj=$2 arch=$3 log=$4 warnings
	if ! build_dirs "$obj" "$arch" "$log"; then
		result FAIL "$name: build failed: $(grep -m3 -E 'error|Error' "$log" | tr '\n' ' ') (log: ${log#"$top"/})"
		return 1
	fi
	warnings=$(touched_warnings "$log")
	if [ -n "$warnings" ]; then
		result FAIL "$name: $(wc -l <<<"$warnings") warning(s) in touched files: $(head -n 3 <<<"$warnings" | tr '\n' ' ') (log: ${log#"$top"/})"
		return 1
	fi
	result ok "$name"
}

# has_option OBJ LINE: the configuration holds LINE.
has_option() { grep -qx "$2" "$1/.config"; }

checkout() { git -C "$src" checkout -q --detach "$1"; }

check_patches() {
	local obj="$out/obj-bisect" n=0 c subject line arch
	"$top/scripts/check-patches.sh" >"$out/checkpatch.log" 2>&1 || true
	while read -r line; do
		case $line in
		"ok   checkpatch "*) result ok "checkpatch --strict ${line#ok   checkpatch }" ;;
		"FAIL checkpatch "*) result FAIL "checkpatch --strict ${line#FAIL checkpatch } (log: build/gates/checkpatch.log)" ;;
		esac
	done <"$out/checkpatch.log"
	for c in "${commits[@]}"; do
		n=$((n + 1))
		subject=$(tgit log -1 --format=%s "$c")
		checkout "$c"
		if configure "$obj" x86_64 defconfig >"$out/bisect.log" 2>&1; then
			gate "build x86_64 patch $n/${#commits[@]}: $subject" "$obj" x86_64 "$out/bisect-$n.log" || true
		else
			result FAIL "build x86_64 patch $n: configuration failed (log: build/gates/bisect.log)"
		fi
		for arch in $(patch_arches "$c"); do
			if configure "$obj-$arch" "$arch" defconfig >"$out/bisect.log" 2>&1; then
				gate "build $arch patch $n/${#commits[@]}: $subject" "$obj-$arch" "$arch" "$out/bisect-$arch-$n.log" || true
			else
				result FAIL "build $arch patch $n: configuration failed (log: build/gates/bisect.log)"
			fi
		done
	done
}

# patch_arches COMMIT: the architectures gates/per-patch-arches.txt builds
# COMMIT for, besides x86_64, from the paths it touches.
patch_arches() {
	local prefix arch
	while read -r prefix arch; do
		case $prefix in '#'* | '') continue ;; esac
		tgit diff --name-only "$1^" "$1" | grep -q "^$prefix" && echo "$arch"
	done <"$top/gates/per-patch-arches.txt" | sort -u
}

# W=1 and C=1 at the base and at the tip, in one kept directory: the
# warnings of the touched files at the tip must all be there at the base.
check_wc() {
	local obj="$out/obj-wc" rev log new
	for rev in base tip; do
		if [ "$rev" = base ]; then checkout "$base_tag"; else checkout "${commits[-1]}"; fi
		log="$out/wc-$rev.log"
		configure "$obj" x86_64 defconfig >"$log" 2>&1 || die "W=1 C=1 gate: configuring x86_64 at the $rev failed (log: ${log#"$top"/})"
		# W=1 warnings are what is compared: not errors under CONFIG_WERROR.
		if ! build_dirs "$obj" x86_64 "$log" W=1 C=1 KCFLAGS=-Wno-error; then
			result FAIL "W=1 C=1 x86_64 at the $rev: build failed (log: ${log#"$top"/})"
			return
		fi
		touched_warnings "$log" >"$out/wc-$rev.warnings"
	done
	new=$(comm -13 "$out/wc-base.warnings" "$out/wc-tip.warnings")
	if [ -n "$new" ]; then
		result FAIL "W=1 C=1 x86_64: $(wc -l <<<"$new") new warning(s) in touched files: $(head -n 3 <<<"$new" | tr '\n' ' ')"
	else
		result ok "W=1 C=1 x86_64: no new warning in touched files ($(wc -l <"$out/wc-base.warnings") at the base, $(wc -l <"$out/wc-tip.warnings") at the tip)"
	fi
}

check_builds() {
	local arch kind obj
	checkout "${commits[-1]}"
	for arch in x86_64 i386 riscv arm64 um riscv32; do
		for kind in defconfig allnoconfig; do
			case $arch in um | riscv32) [ "$kind" = defconfig ] || continue ;; esac
			obj="$out/obj-$arch-$kind"
			if ! configure "$obj" "$arch" "$kind" >"$out/$arch-$kind.log" 2>&1; then
				result FAIL "$arch $kind: configuration failed (log: build/gates/$arch-$kind.log)"
				continue
			fi
			while read -r line; do
				has_option "$obj" "$line" ||
					result FAIL "$arch $kind: the configuration lacks $line (gates/required.txt)"
			done < <(sed -n "s/^$arch-$kind //p" "$top/gates/required.txt")
			gate "$arch $kind" "$obj" "$arch" "$out/$arch-$kind.log" || true
		done
	done
}

# Debian's amd64 configuration, from the linux-config-6.1 package of the
# base's version (downloaded, not installed).
check_debian() {
	local obj="$out/obj-debian" deb ver
	ver=$(installed_base_version)
	checkout "${commits[-1]}"
	mkdir -p "$out/debian" "$obj"
	if [ ! -f "$out/debian/config.amd64_none_amd64.xz" ]; then
		(cd "$out/debian" && apt-get download -q -o APT::Sandbox::User=root "linux-config-6.1=$ver" >/dev/null) ||
			die "Debian gate: apt-get download linux-config-6.1=$ver failed"
		deb=$(find "$out/debian" -name 'linux-config-6.1_*.deb' | head -n 1)
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$out/debian" --wildcards '*config.amd64_none_amd64.xz'
		find "$out/debian" -name config.amd64_none_amd64.xz -exec mv {} "$out/debian/" \;
	fi
	xz -dc "$out/debian/config.amd64_none_amd64.xz" >"$obj/.config"
	gmake "$obj" x86_64 olddefconfig >"$out/debian.log" 2>&1 ||
		die "Debian gate: olddefconfig failed (log: build/gates/debian.log)"
	if has_option "$obj" CONFIG_ARCH_HAS_CPU_CACHE_INVALIDATE_MEMREGION=y; then
		result ok "Debian amd64 config: ARCH_HAS_CPU_CACHE_INVALIDATE_MEMREGION=y, LIBNVDIMM=$(sed -n 's/^CONFIG_LIBNVDIMM=//p' "$obj/.config"), CXL_BUS=$(sed -n 's/^CONFIG_CXL_BUS=//p' "$obj/.config")"
	else
		result FAIL "Debian amd64 config: ARCH_HAS_CPU_CACHE_INVALIDATE_MEMREGION is off"
	fi
	# The cover letter says Debian's amd64 kernel has no error
	# injection, so that the ALLOW_ERROR_INJECTION() of patches 3 and 5
	# is empty there.
	if has_option "$obj" "# CONFIG_FUNCTION_ERROR_INJECTION is not set"; then
		result ok "Debian amd64 config: FUNCTION_ERROR_INJECTION off, ALLOW_ERROR_INJECTION() empty"
	else
		result FAIL "Debian amd64 config: FUNCTION_ERROR_INJECTION is on: cpu_cache_invalidate_memregion() can be made to fail there (fix the cover letter)"
	fi
	gate "Debian amd64 config build (touched directories and their modules)" "$obj" x86_64 "$out/debian.log" || true
}

# The pages: make htmldocs for each Documentation/ directory (SPHINXDIRS)
# that holds a page the series touches, at the base and at the tip.
# Sphinx and kernel-doc name the file of each warning ("PATH:LINE:
# WARNING: ..."); a warning in a touched file that the base does not
# have (compared without line numbers) fails the gate.
docs_warnings() {
	local rev=$1 log="$out/docs-$1.log"
	mkdir -p "$out/obj-docs-$rev"
	make -C "$src" O="$out/obj-docs-$rev" SPHINXDIRS="${sphinxdirs[*]}" htmldocs >"$log" 2>&1 ||
		return 1
	touched_warnings "$log"
}

# docs_dirs: the Sphinx directories the docs gate builds, at the checkout:
# the top-level one of each page the series touches (its index lists the
# page), and for each page that pulls kernel-doc from another file the
# series touches, the nearest directory above it with an index.rst.
docs_dirs() {
	local f dir
	printf '%s\n' "${touched[@]}" | sed -n 's|^Documentation/\([^/]*\)/.*\.rst$|\1|p'
	for f in "${touched[@]}"; do
		case $f in Documentation/*) continue ;; esac
		grep -rlE --include='*.rst' "^\.\. kernel-doc:: ${f//./\\.}[[:space:]]*$" "$src/Documentation" || true
	done | while read -r f; do
		dir=$(dirname "$f")
		while [ ! -f "$dir/index.rst" ] && [ "$dir" != "$src/Documentation" ]; do
			dir=$(dirname "$dir")
		done
		echo "${dir#"$src"/Documentation/}"
	done
}

check_docs() {
	local new rev
	checkout "${commits[-1]}"
	mapfile -t sphinxdirs < <(docs_dirs | sort -u)
	if [ ${#sphinxdirs[@]} -eq 0 ]; then
		result ok "docs: the series touches no page"
		return
	fi
	for rev in base tip; do
		if [ "$rev" = base ]; then checkout "$base_tag"; else checkout "${commits[-1]}"; fi
		if ! docs_warnings "$rev" >"$out/docs-$rev.warnings"; then
			result FAIL "docs: make htmldocs SPHINXDIRS='${sphinxdirs[*]}' failed at the $rev (log: build/gates/docs-$rev.log)"
			return
		fi
	done
	new=$(comm -13 "$out/docs-base.warnings" "$out/docs-tip.warnings")
	if [ -n "$new" ]; then
		result FAIL "docs: $(wc -l <<<"$new") new warning(s) in touched files: $(head -n 2 <<<"$new" | tr '\n' ' ')(log: build/gates/docs-tip.log)"
	else
		result ok "docs: ${sphinxdirs[*]} build with no new warning in a touched file ($(wc -l <"$out/docs-base.warnings") at the base, $(wc -l <"$out/docs-tip.warnings") at the tip)"
	fi
}

check_randconfig() {
	local arch i seed obj
	checkout "${commits[-1]}"
	for arch in "${rand_arches[@]}"; do
		obj="$out/obj-$arch-randconfig"
		for ((i = 0; i < randconfigs; i++)); do
			seed=$((seed0 + i))
			if ! configure "$obj" "$arch" randconfig "$seed" >"$out/$arch-randconfig.log" 2>&1; then
				result FAIL "randconfig $arch seed $seed: configuration failed"
				continue
			fi
			cp "$obj/.config" "$out/$arch-randconfig-$seed.config"
			gate "randconfig $arch seed $seed (reproduce: GATES_ARCHES=$arch GATES_SEED=$seed GATES_RANDCONFIGS=1 scripts/run-gates.sh randconfig)" \
				"$obj" "$arch" "$out/$arch-randconfig-$seed.log" || true
		done
	done
}

check_shellcheck() {
	if (cd "$top" && shellcheck -x scripts/*.sh .ci/run && shellcheck -x -s sh e2e/guest/init e2e/guest/*.sh) >"$out/shellcheck.log" 2>&1; then
		result ok "shellcheck: scripts/*.sh, .ci/run, e2e/guest"
	else
		result FAIL "shellcheck: $(grep -c '^In ' "$out/shellcheck.log") finding(s) (log: build/gates/shellcheck.log)"
	fi
}

for check in "${checks[@]}"; do
	start=$SECONDS
	case $check in
	patches) check_patches ;;
	wc) check_wc ;;
	builds) check_builds ;;
	debian) check_debian ;;
	docs) check_docs ;;
	randconfig) check_randconfig ;;
	shellcheck) check_shellcheck ;;
	*) die "no gate '$check' (patches wc builds debian docs randconfig shellcheck)" ;;
	esac
	note "$check: $((SECONDS - start)) s"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
