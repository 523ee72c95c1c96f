#!/bin/bash
# make e2e: the NVDIMM and CXL conversions end to end. Builds the x86_64
# series kernel with libnvdimm, nfit and cxl as modules (e2e/kernel.config),
# the test modules of tools/testing/nvdimm (nfit_test) and tools/testing/cxl
# (cxl_test), and e2e/devmem_ns_test with and without its DEVMEM import;
# packs an initramfs with busybox, Debian's ndctl, cxl, keyctl and kmod and
# the libraries they need; and boots each scenario of e2e/guest under QEMU
# -smp 2, once with the CPUID hypervisor bit hidden (WBINVD runs) and once
# visible (invalidation unsupported). Prints one line per check and ends
# with "N passed, N failed".
#
# Usage: run-e2e.sh [SCENARIO...]   (default: ndctl cxl namespace)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(ndctl cxl namespace)
modes=(hidden visible)
for s in "${scenarios[@]}"; do
	[ -f "$top/e2e/guest/$s.sh" ] || die "no scenario '$s' (e2e/guest/$s.sh)"
done
[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"
for cmd in qemu-system-x86_64 busybox ndctl cxl keyctl kmod depmod cpio; do
	command -v "$cmd" >/dev/null || die "$cmd is not installed (run: make deps)"
done

out="$build_dir/e2e"
obj="$out/obj"
extmod="$out/extmod"
root="$out/root"
mkdir -p "$obj" "$extmod"

passed=0 failed=0 result_tag=e2e

cc=$(ccache_cc "")
kmake() {
	make -C "$tree" O="$obj" -j"$(nproc)" ${cc:+"$cc"} "$@"
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

# The kernel: x86_64 defconfig plus the fragment, every line of which must
# have taken effect.
t0=$SECONDS
logged "configuring the x86_64 kernel" "$out/config.log" kmake defconfig
logged "merging e2e/kernel.config" "$out/config.log" \
	"$tree/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$top/e2e/kernel.config"
logged "configuring the x86_64 kernel" "$out/config.log" kmake olddefconfig
while read -r line; do
	case $line in
	CONFIG_*=*) grep -qxF "$line" "$obj/.config" || die "e2e/kernel.config: '$line' did not take effect (dependencies missing?)" ;;
	"# CONFIG_"*" is not set") grep -qxF "$line" "$obj/.config" || die "e2e/kernel.config: '$line' did not take effect" ;;
	esac
done <"$top/e2e/kernel.config"
grep -qx CONFIG_EVENT_TRACING=y "$obj/.config" || die "the e2e kernel has no trace events (CONFIG_EVENT_TRACING)"
note "building the kernel and modules in build/e2e/obj ..."
logged "building the x86_64 kernel" "$out/build.log" kmake bzImage modules
kver=$(cat "$obj/include/config/kernel.release")

# nfit_test and cxl_test compile drivers/ sources with wrapped symbols into
# modules of the same names. In 6.1 external modules build in their source
# directory, so they build in a copy of what they compile, never in the
# series tree, whose in-tree objects must stay its own.
for d in tools/testing/nvdimm tools/testing/cxl drivers/nvdimm drivers/acpi/nfit drivers/dax drivers/cxl; do
	mkdir -p "$extmod/$d"
	rsync -a --include='*/' --include='*.[ch]' --include='Kbuild' --include='Makefile' \
		--exclude='*' "$tree/$d/" "$extmod/$d/"
done
rm -rf "$root"
mkdir -p "$root"
logged "installing the kernel's modules" "$out/install.log" \
	kmake INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 modules_install
for t in nvdimm cxl; do
	logged "building tools/testing/$t" "$out/$t-test.log" kmake M="$extmod/tools/testing/$t" modules
	logged "installing tools/testing/$t" "$out/$t-test.log" \
		kmake M="$extmod/tools/testing/$t" INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 modules_install
done
# The test builds replace the in-tree modules of the same name.
moddir="$root/lib/modules/$kver"
while read -r ko; do
	find "$moddir/kernel" -name "$(basename "$ko")" -delete
done < <(find "$moddir/extra" -name '*.ko')
note "kernel and test modules built in $((SECONDS - t0)) s"

# The namespace module. Without the import, modpost must refuse it; built
# anyway, the guest checks the kernel refuses to load it. With the import
# it must build cleanly. In 6.1 modpost demotes a missing import to a
# warning only for make nsdeps (its -N), so "anyway" is KBUILD_NSDEPS=1,
# which otherwise only writes a list of the missing imports.
for v in import noimport; do
	rm -rf "${out:?}/ns-$v"
	cp -r "$top/e2e/devmem_ns_test" "$out/ns-$v"
done
if kmake M="$out/ns-import" DEVMEM_NS_TEST_IMPORT=y modules >"$out/ns-import.log" 2>&1; then
	result ok "namespace/modpost accepts the module that imports DEVMEM"
else
	result FAIL "namespace/modpost accepts the module that imports DEVMEM (log: build/e2e/ns-import.log)"
fi
if kmake M="$out/ns-noimport" modules >"$out/ns-noimport.log" 2>&1; then
	result FAIL "namespace/modpost rejects the module without the import: it built (log: build/e2e/ns-noimport.log)"
elif grep -q "from namespace DEVMEM, but does not import it" "$out/ns-noimport.log"; then
	result ok "namespace/modpost rejects the module without the import: $(grep -m1 -o 'module .*does not import it' "$out/ns-noimport.log")"
else
	result FAIL "namespace/modpost rejects the module without the import, but not for the namespace (log: build/e2e/ns-noimport.log)"
fi
logged "building the module without the import anyway" "$out/ns-noimport.log" \
	kmake M="$out/ns-noimport" KBUILD_NSDEPS=1 modules

# The initramfs: busybox, the tools and their libraries, the modules, the
# scenarios and the two namespace modules.
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,e2e/import,e2e/noimport}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $(busybox --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
for cmd in ndctl cxl keyctl kmod; do
	bin=$(command -v "$cmd")
	rm -f "$root/bin/$cmd"
	cp "$bin" "$root/bin/$cmd"
	# ldd prints "name => /path (addr)" and "/lib64/ld-linux... (addr)".
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
for applet in modprobe insmod rmmod lsmod depmod modinfo; do
	ln -sf kmod "$root/bin/$applet"
done
logged "depmod for the initramfs" "$out/install.log" depmod -b "$root" "$kver"
cp "$top/e2e/guest/init" "$root/init"
chmod +x "$root/init"
cp "$top"/e2e/guest/*.sh "$root/e2e/"
cp "$out/ns-import/devmem_ns_test.ko" "$root/e2e/import/"
cp "$out/ns-noimport/devmem_ns_test.ko" "$root/e2e/noimport/"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$out/initramfs.cpio"
note "initramfs: $(du -m "$out/initramfs.cpio" | cut -f1) MiB"

# One boot per scenario and mode.
for s in "${scenarios[@]}"; do
	for m in "${modes[@]}"; do
		log="$out/$s-$m.log"
		case $m in
		hidden) cpu=qemu64,-hypervisor ;;
		visible) cpu=qemu64,+hypervisor ;;
		esac
		t0=$SECONDS
		timeout 900 qemu-system-x86_64 -nographic -no-reboot -m 3G -smp 2 -cpu "$cpu" \
			-kernel "$obj/arch/x86/boot/bzImage" -initrd "$out/initramfs.cpio" \
			-append "console=ttyS0 quiet panic=-1 e2e.scenario=$s e2e.mode=$m" \
			</dev/null >"$log" 2>&1 || true
		while read -r kind text; do
			case $kind in
			pass) result ok "$m $text" ;;
			FAIL) result FAIL "$m $text" ;;
			note) echo "     $m $text" ;;
			esac
		done < <(tr -d '\r' <"$log" | sed -n 's/^E2E \(pass\|FAIL\|note\) /\1 /p')
		if tr -d '\r' <"$log" | grep -qx "E2E done"; then
			result ok "$m $s: ran to its end in $((SECONDS - t0)) s"
		else
			result FAIL "$m $s: did not run to its end (log: ${log#"$top"/})"
		fi
	done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
