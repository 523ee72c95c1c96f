#!/bin/bash
# make e2e: the NVDIMM and CXL conversions end to end, on the
# architecture E2E_ARCH names (default x86_64), as e2e/arches/ARCH.conf
# describes it. Builds each of its series kernels from allnoconfig, the
# arch's fragments (e2e/kernel.config: libnvdimm, nfit and cxl as
# modules, trace and kprobe events, PROVE_LOCKING, DEBUG_ATOMIC_SLEEP;
# then the arch's own) and one of e2e/kernels/*.config, each with its
# test modules (tools/testing/nvdimm's nfit_test, tools/testing/cxl's
# cxl_test, tools/testing/cache's agent) and e2e/devmem_ns_test with
# and without its DEVMEM import; packs an initramfs per kernel with
# busybox, the arch's guest tools and the libraries they need; and boots
# each scenario of e2e/guest under QEMU in each of the arch's boots. On
# x86_64: the production kernel with the CPUID hypervisor bit hidden
# (WBINVD runs), the nvdimm-bypass and cxl-bypass kernels with it
# visible (invalidation unsupported). On arm64: the agent kernel (KASAN)
# with cxl_test and the test cache agent. Prints one line per check,
# fails a boot whose console shows a kernel splat, and ends with
# "N passed, N failed".
#
# Usage: [E2E_ARCH=ARCH] run-e2e.sh [SCENARIO...]
#   (default: the arch's scenarios_default)
# E2E_BOOTS="KERNEL/MODE ..." boots only those (default: all of the arch's).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

arch=${E2E_ARCH:-x86_64}
conf="$top/e2e/arches/$arch.conf"
[ -f "$conf" ] || die "E2E_ARCH=$arch: no e2e/arches/$arch.conf (there are: $(arches "$top/e2e/arches" | paste -sd' '))"
kernel_arch='' cross_compile='' image='' busybox='' console='' results_dev='' out_name='' tag=''
fragments=() test_modules=() test_sources=() guest_tools=() qemu=() results_args=()
boots=() scenarios_default=()
declare -A mode_args=()
# shellcheck source=../e2e/arches/x86_64.conf
. "$conf"

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${scenarios_default[@]}")
all_boots="${boots[*]}"
read -r -a boots <<<"${E2E_BOOTS:-$all_boots}"
for s in "${scenarios[@]}"; do
	[ -f "$top/e2e/guest/$s.sh" ] || die "no scenario '$s' (e2e/guest/$s.sh)"
done
kernels=()
for b in "${boots[@]}"; do
	case " $all_boots " in *" $b "*) ;; *) die "E2E_BOOTS: no $arch boot '$b' (one of: $all_boots)" ;; esac
	[ -n "${mode_args[${b#*/}]+set}" ] || die "e2e/arches/$arch.conf: boot '$b' has no mode_args entry"
	case " ${kernels[*]} " in *" ${b%/*} "*) ;; *) kernels+=("${b%/*}") ;; esac
done
[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"
for cmd in "${qemu[0]}" "${guest_tools[@]}" depmod cpio "${cross_compile}gcc"; do
	command -v "$cmd" >/dev/null || die "$cmd is not installed (run: make deps)"
done
[ -x "$busybox" ] || die "no busybox for $arch at '$busybox' (run: make deps)"

out="$build_dir/$out_name"
mkdir -p "$out"

passed=0 failed=0 result_tag=${tag:?}

cc=$(ccache_cc "$cross_compile")
# kmake OBJ ARGS...: make in the series tree for the arch, objects in OBJ.
kmake() {
	local o=$1
	shift
	make -C "$tree" O="$o" ARCH="$kernel_arch" ${cross_compile:+CROSS_COMPILE="$cross_compile"} \
		-j"$(nproc)" ${cc:+"$cc"} "$@"
}
# logged STEP LOG COMMAND...: run COMMAND into LOG; on failure name STEP
# and show the end of LOG.
logged() {
	local step=$1 log=$2
	shift 2
	if ! "$@" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "$step failed: $* (log: ${log#"$top"/})"
	fi
}

# check_fragment FRAGMENT CONFIG: every line of FRAGMENT took effect.
check_fragment() {
	local line
	while read -r line; do
		case $line in
		CONFIG_*=* | "# CONFIG_"*" is not set")
			grep -qxF "$line" "$2" ||
				die "${1#"$top"/}: '$line' did not take effect (dependencies missing?)"
			;;
		esac
	done <"$1"
}

# build_kernel NAME: the kernel of e2e/kernels/NAME.config in
# build/e2e/NAME/obj, its modules and the test modules in
# build/e2e/NAME/root.
build_kernel() {
	local name=$1 kout="$out/$1" t0=$SECONDS kver d t ko
	local obj="$kout/obj" extmod="$kout/extmod" root="$kout/root"
	local frags=("${fragments[@]/#/$top/}" "$top/e2e/kernels/$name.config") f
	mkdir -p "$obj" "$extmod"
	logged "configuring the $arch $name kernel" "$kout/config.log" kmake "$obj" allnoconfig
	logged "merging the $arch $name fragments" "$kout/config.log" \
		env ARCH="$kernel_arch" "$tree/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "${frags[@]}"
	logged "configuring the $arch $name kernel" "$kout/config.log" kmake "$obj" olddefconfig
	for f in "${frags[@]}"; do
		check_fragment "$f" "$obj/.config"
	done
	note "building the $arch $name kernel and modules in ${obj#"$top"/} ..."
	logged "building the $arch $name kernel" "$kout/build.log" kmake "$obj" "${image##*/}" modules
	kver=$(cat "$obj/include/config/kernel.release")

	# nfit_test and cxl_test compile drivers/ sources with wrapped symbols
	# into modules of the same names. In 6.1 external modules build in
	# their source directory, so they build in a copy of what they
	# compile, never in the series tree, whose in-tree objects must stay
	# its own.
	for d in "${test_modules[@]}" "${test_sources[@]}"; do
		mkdir -p "$extmod/$d"
		rsync -a --include='*/' --include='*.[ch]' --include='Kbuild' --include='Makefile' \
			--exclude='*' "$tree/$d/" "$extmod/$d/"
	done
	rm -rf "$root"
	mkdir -p "$root"
	logged "installing the $name kernel's modules" "$kout/install.log" \
		kmake "$obj" INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 modules_install
	for d in "${test_modules[@]}"; do
		t=${d##*/}
		logged "building $d for $name" "$kout/$t-test.log" \
			kmake "$obj" M="$extmod/$d" modules
		logged "installing $d for $name" "$kout/$t-test.log" \
			kmake "$obj" M="$extmod/$d" INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 modules_install
	done
	# The test builds replace the in-tree modules of the same name.
	while read -r ko; do
		find "$root/lib/modules/$kver/kernel" -name "$(basename "$ko")" -delete
	done < <(find "$root/lib/modules/$kver/extra" -name '*.ko')
	note "$arch $name: kernel and test modules built in $((SECONDS - t0)) s"
}

# build_ns_modules NAME: the namespace module, with and without its
# DEVMEM import, against the NAME kernel (whose options, ftrace's among
# them, its modules must match), in build/e2e/NAME/ns-{import,noimport}.
# Without the import, modpost must refuse it; built anyway, the guest
# checks the kernel refuses to load it. With the import it must build
# cleanly. In 6.1 modpost demotes a missing import to a warning only for
# make nsdeps (its -N), so "anyway" is KBUILD_NSDEPS=1, which otherwise
# only writes a list of the missing imports.
build_ns_modules() {
	local k=$1 obj="$out/$1/obj" ns="$out/$1/ns" v
	for v in import noimport; do
		rm -rf "${ns:?}-$v"
		cp -r "$top/e2e/devmem_ns_test" "$ns-$v"
	done
	if kmake "$obj" M="$ns-import" DEVMEM_NS_TEST_IMPORT=y modules >"$ns-import.log" 2>&1; then
		result ok "namespace/$k: modpost accepts the module that imports DEVMEM"
	else
		result FAIL "namespace/$k: modpost accepts the module that imports DEVMEM (log: ${ns#"$top"/}-import.log)"
	fi
	if kmake "$obj" M="$ns-noimport" modules >"$ns-noimport.log" 2>&1; then
		result FAIL "namespace/$k: modpost rejects the module without the import: it built (log: ${ns#"$top"/}-noimport.log)"
	elif grep -q "from namespace DEVMEM, but does not import it" "$ns-noimport.log"; then
		result ok "namespace/$k: modpost rejects the module without the import: $(grep -m1 -o 'module .*does not import it' "$ns-noimport.log")"
	else
		result FAIL "namespace/$k: modpost rejects the module without the import, but not for the namespace (log: ${ns#"$top"/}-noimport.log)"
	fi
	logged "building the module without the import anyway for $k" "$ns-noimport.log" \
		kmake "$obj" M="$ns-noimport" KBUILD_NSDEPS=1 modules
}

for k in "${kernels[@]}"; do
	build_kernel "$k"
	build_ns_modules "$k"
done

# pack_initramfs NAME: busybox, the tools and their libraries, the
# modules, the scenarios and the two namespace modules, in
# build/E2E/NAME/initramfs.cpio. /init links busybox's applets at boot
# (busybox --install), which leaves the tools' own names alone.
pack_initramfs() {
	local root="$out/$1/root" kver cmd bin lib applet
	kver=$(cat "$out/$1/obj/include/config/kernel.release")
	mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,e2e/import,e2e/noimport}
	cp "$busybox" "$root/bin/busybox"
	ln -sf busybox "$root/bin/sh"
	for cmd in "${guest_tools[@]}"; do
		bin=$(command -v "$cmd")
		rm -f "$root/bin/$cmd"
		cp "$bin" "$root/bin/$cmd"
		# ldd prints "name => /path (addr)" and "/lib64/ld-linux... (addr)".
		for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
	done
	case " ${guest_tools[*]} " in
	*" kmod "*)
		for applet in modprobe insmod rmmod lsmod depmod modinfo; do
			ln -sf kmod "$root/bin/$applet"
		done
		;;
	esac
	logged "depmod for the $1 initramfs" "$out/$1/install.log" depmod -b "$root" "$kver"
	cp "$top/e2e/guest/init" "$root/init"
	chmod +x "$root/init"
	cp "$top"/e2e/guest/*.sh "$root/e2e/"
	cp "$out/$1/ns-import/devmem_ns_test.ko" "$root/e2e/import/"
	cp "$out/$1/ns-noimport/devmem_ns_test.ko" "$root/e2e/noimport/"
	(cd "$root" && find . | cpio -o -H newc --quiet) >"$out/$1/initramfs.cpio"
	note "$1 initramfs: $(du -m "$out/$1/initramfs.cpio" | cut -f1) MiB"
}
for k in "${kernels[@]}"; do
	pack_initramfs "$k"
done

# What a scenario's console must not show: warnings, bugs and lockdep's
# reports (which start with WARNING: or BUG:, but not all of them); x86
# prints "Call Trace", arm64 "Call trace".
splat='WARNING:|BUG:|Call [Tt]race|possible (circular|recursive) locking|inconsistent lock state|lock held when returning|INFO: task .* blocked|Oops'

# How many checks each path of a boot ran: the part of a check's name
# before its first colon ("ndctl/race", "cxl/failed write-back").
declare -A paths=()

# One boot per scenario, kernel and mode.
for s in "${scenarios[@]}"; do
	for b in "${boots[@]}"; do
		k=${b%/*} m=${b#*/}
		log="$out/$s-$k-$m.log"
		read -r -a cpu <<<"${mode_args[$m]}"
		# The console and the results port, apart.
		results="$out/$s-$k-$m.results"
		rm -f "$results"
		t0=$SECONDS
		timeout 900 "${qemu[@]}" -nographic -no-reboot "${cpu[@]}" -serial mon:stdio \
			"${results_args[@]//@RESULTS@/$results}" \
			-kernel "$out/$k/obj/$image" -initrd "$out/$k/initramfs.cpio" \
			-append "console=$console loglevel=5 panic=-1 e2e.scenario=$s e2e.mode=$m e2e.kernel=$k e2e.results=$results_dev" \
			</dev/null >"$log" 2>&1 || true
		[ -f "$results" ] || touch "$results"
		n=0
		while read -r kind text; do
			case $kind in
			pass | FAIL)
				if [ "$kind" = pass ]; then result ok "$k/$m $text"; else result FAIL "$k/$m $text"; fi
				n=$((n + 1))
				paths["$k/$m ${text%%:*}"]=$((${paths["$k/$m ${text%%:*}"]:-0} + 1))
				;;
			note) echo "     $k/$m $text" ;;
			esac
		done < <(tr -d '\r' <"$results" | sed -n 's/^E2E \(pass\|FAIL\|note\) /\1 /p')
		tally=$(tr -d '\r' <"$results" | sed -n 's/^E2E done \([0-9][0-9]*\)$/\1/p' | tail -n 1)
		if [ -z "$tally" ]; then
			result FAIL "$k/$m $s: did not run to its end (log: ${log#"$top"/}, results: ${results#"$top"/})"
		elif [ "$tally" -ne "$n" ]; then
			result FAIL "$k/$m $s: $n results received, the guest printed $tally (results: ${results#"$top"/})"
		else
			result ok "$k/$m $s: ran to its end in $((SECONDS - t0)) s, $n results, as the guest counted"
		fi
		if tr -d '\r' <"$log" | grep -Eq "$splat"; then
			result FAIL "$k/$m $s: kernel splat: $(tr -d '\r' <"$log" | grep -E -m1 "$splat") (log: ${log#"$top"/})"
		else
			result ok "$k/$m $s: no WARNING, BUG, Call Trace or lockdep report on the console"
		fi
	done
done

# The paths with more than one check, a line per boot and scenario.
for key in "${!paths[@]}"; do
	if [ "${paths[$key]}" -gt 1 ]; then echo "$key|${paths[$key]}"; fi
done | sort | awk -F'|' '{
	split($1, w, " "); boot = w[1]; path = substr($1, length(boot) + 2)
	scen = path; sub(/\/.*/, "", scen); sub(/^[^\/]*\//, "", path)
	key = boot " " scen
	line[key] = line[key] (line[key] == "" ? "" : ", ") path " " $2
} END { for (k in line) print "     paths " k ": " line[k] }' | sort
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
