#!/usr/bin/env bash
# make bench-vmap: what new kernel mappings cost on riscv64, three ways.
# Builds three variants of the series kernel (allnoconfig plus
# bench/vmap.config, which turns on the fence counters) and boots them
# under QEMU riscv64; each boot loads lib/test_vmalloc.ko once per test.
#   A  nothing on a new kernel mapping: 6.1 (bench/variant-A.diff)
#   B  a fence on every hart for each new mapping: upstream v6.5 to v6.11
#      (bench/variant-B.diff)
#   C  the series: marks, and a lazy fence on a marked fault
# Timing: $BENCH_ROUNDS rounds (at least 5) alternating A B C, on as many
# harts as the host has cores (at most 2). Fences: one boot per variant on
# 4 harts. The cost of one lazy fault against one remote fence comes from
# the KUnit suite riscv_flush_cache_vmap (make kunit ARCH=riscv). Prints
# and writes bench/vmap-results.md.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rounds=${BENCH_ROUNDS:-5}
[ "$rounds" -ge 5 ] || die "BENCH_ROUNDS=$rounds: at least 5 rounds"
# test_vmalloc's default is 1000000 loops per test: hours under TCG.
loops=${BENCH_LOOPS:-10000}
timing_harts=$(($(nproc) < 2 ? $(nproc) : 2))
[ "$timing_harts" -ge 2 ] || die "one CPU: timing needs 2 harts, or no hart is ever fenced remotely"
fence_harts=4
target=1.05
out="$build_dir/bench-vmap"
results="$top/bench/vmap-results.md"
opensbi=/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin
cross=riscv64-linux-gnu-
variants=(A B C)

[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"
[ -f "$opensbi" ] || die "$opensbi is missing (run: make deps)"
mkdir -p "$out"

tip=$(tgit rev-parse "$series_branch")

# prepare_variant V: its source (a worktree of build/linux at the tip, with
# bench/variant-V.diff applied) and its kernel.
prepare_variant() {
	local v=$1 src="$out/$1/src" obj="$out/$1/obj" diff="" key
	[ "$v" = C ] || diff="$top/bench/variant-$v.diff"
	key="$tip $( [ -z "$diff" ] || sha256sum "$diff" | cut -d' ' -f1)"
	mkdir -p "$out/$v"
	if [ "$(cat "$out/$v/key" 2>/dev/null || true)" != "$key" ]; then
		note "variant $v: preparing sources"
		if ! git -C "$src" rev-parse -q --verify "$tip^{commit}" >/dev/null 2>&1; then
			rm -rf "$src"
			tgit worktree prune
			tgit worktree add -q --detach "$src" "$tip" ||
				die "variant $v: git worktree add failed"
		fi
		git -C "$src" checkout -q -f --detach "$tip"
		if [ -n "$diff" ]; then
			git -C "$src" apply "$diff" ||
				die "variant $v: ${diff#"$top"/} does not apply to the series tip"
		fi
		echo "$key" >"$out/$v/key"
	fi

	mkdir -p "$obj"
	local mk=(make -C "$src" O="$obj" ARCH=riscv CROSS_COMPILE="$cross") cc
	cc=$(ccache_cc "$cross")
	[ -z "$cc" ] || mk+=("$cc")
	note "variant $v: building the kernel and test_vmalloc.ko"
	KCONFIG_ALLCONFIG="$top/bench/vmap.config" "${mk[@]}" -s allnoconfig >/dev/null ||
		die "variant $v: make allnoconfig failed"
	while read -r line; do
		grep -qx -- "$line" "$obj/.config" ||
			die "variant $v: bench/vmap.config wants $line, .config does not have it"
	done < <(grep -E '^CONFIG_[A-Z0-9_]+=[ym]$' "$top/bench/vmap.config")
	"${mk[@]}" -s -j"$(nproc)" Image modules >"$out/$v/build.log" 2>&1 ||
		{ tail -n 30 "$out/$v/build.log" >&2; die "variant $v: build failed (log: ${out#"$top"/}/$v/build.log)"; }

	cat >"$out/$v/initramfs.list" <<-EOF
	dir /dev 0755 0 0
	nod /dev/console 0600 0 0 c 5 1
	dir /d 0755 0 0
	file /init $out/init 0755 0 0
	file /params $out/params 0644 0 0
	file /test_vmalloc.ko $obj/lib/test_vmalloc.ko 0644 0 0
	EOF
	"$obj/usr/gen_init_cpio" "$out/$v/initramfs.list" >"$out/$v/initramfs.cpio" ||
		die "variant $v: gen_init_cpio failed"
}

# boot V ROUND HARTS TAG: one boot. Appends "V ROUND test usec" to
# times-TAG.tsv, "V test marks lazy remote" to fences-TAG.tsv (test
# "(module load)" for the load without a test), failures to
# failures-TAG.tsv.
boot() {
	local v=$1 r=$2 harts=$3 tag=$4 log="$out/$1/boot-$4-$2.log"
	timeout 1800 qemu-system-riscv64 -machine virt -cpu rv64 -smp "$harts" -m 1024 \
		-nographic -no-reboot -bios "$opensbi" \
		-kernel "$out/$v/obj/arch/riscv/boot/Image" \
		-initrd "$out/$v/initramfs.cpio" \
		-append "console=ttyS0" </dev/null >"$log" 2>&1 ||
		die "variant $v round $r: qemu-system-riscv64 failed or timed out (log: ${log#"$top"/})"
	grep -q '^bench-vmap: done' "$log" ||
		die "variant $v round $r: the benchmark did not finish (log: ${log#"$top"/})"
	grep -q '^bench-vmap: mask=.* no counters' "$log" &&
		die "variant $v round $r: no fence counters (CONFIG_RISCV_TLB_FENCE_STATS?) (log: ${log#"$top"/})"
	awk -v v="$v" '/Summary: .* failed: [1-9]/ {
		for (i = 1; i <= NF; i++) if ($i == "Summary:") print $(i + 1) "\t" v
	}' "$log" >>"$out/failures-$tag.tsv"
	# Per test, the mean over the workers of their average time; the
	# counters' line follows each load's summaries.
	awk -v v="$v" -v r="$r" -v times="$out/times-$tag.tsv" -v fences="$out/fences-$tag.tsv" '
		/Summary: / {
			for (i = 1; i <= NF; i++) {
				if ($i == "Summary:") name = $(i + 1)
				if ($i == "avg:") { sum[name] += $(i + 1); n[name]++ }
			}
		}
		/^bench-vmap: mask=/ {
			split($0, kv, /[ =]/)
			t = (kv[3] == "0x0") ? "(module load)" : name
			printf "%s\t%s\t%s\t%s\t%s\n", v, t, kv[5], kv[7], kv[9] >>fences
		}
		END { for (t in sum) printf "%s\t%s\t%s\t%.0f\n", v, r, t, sum[t] / n[t] >>times }
	' "$log"
}

"${cross}gcc" -static -O2 -Wall -o "$out/init" "$top/bench/vmap-init.c" ||
	die "could not build bench/vmap-init.c with ${cross}gcc"
echo "test_loop_count=$loops" >"$out/params"

for v in "${variants[@]}"; do
	prepare_variant "$v"
done

rm -f "$out"/times-*.tsv "$out"/fences-*.tsv "$out"/failures-*.tsv
touch "$out/failures-timing.tsv"
start=$SECONDS
for r in $(seq 1 "$rounds"); do
	for v in "${variants[@]}"; do
		note "round $r/$rounds: variant $v, $timing_harts harts"
		boot "$v" "$r" "$timing_harts" timing
	done
done
for v in "${variants[@]}"; do
	note "fence counts: variant $v, $fence_harts harts"
	boot "$v" 1 "$fence_harts" fences
done
elapsed=$((SECONDS - start))

# A test may fail by design (align_shift_alloc_test asks for alignments
# up to 2^63, which vmalloc cannot give); one that fails only in some
# variants is a regression of theirs.
failing=$(cut -f1 "$out/failures-timing.tsv" | sort -u)
for t in $failing; do
	in=$(awk -F'\t' -v t="$t" '$1 == t { print $2 }' "$out/failures-timing.tsv" | sort -u | paste -sd' ')
	[ "$in" = "${variants[*]}" ] ||
		die "$t fails in variant(s) $in only (logs: ${out#"$top"/}/*/boot-*.log)"
done
failing_note="none"
[ -z "$failing" ] || failing_note="$(echo "$failing" | paste -sd' '), in every variant and round"

# The cost of one lazy fault against one remote fence, from the KUnit
# suite on 2 and 4 harts.
note "the lazy fault's cost: scripts/run-kunit.sh riscv flush_cache_vmap flush_cache_vmap_4_harts"
"$top/scripts/run-kunit.sh" riscv flush_cache_vmap flush_cache_vmap_4_harts >"$out/kunit.log" 2>&1 ||
	{ tail -n 20 "$out/kunit.log" >&2; die "the riscv KUnit runs failed (log: ${out#"$top"/}/kunit.log)"; }
cost=""
for run in flush_cache_vmap flush_cache_vmap_4_harts; do
	line=$(grep -o 'cost: .*' "$build_dir/kunit/riscv/arch_riscv_mm_flush_cache_vmap/$run.kernel.log" |
		sed 's/^cost: //' | paste -sd';') ||
		die "no cost lines in the KUnit log of run $run"
	[ -n "$line" ] || die "no cost lines in the KUnit log of run $run"
	cost+="- $run: $line"$'\n'
done

report=$(awk -F'\t' -v target="$target" '
	function sort(a, n,    i, j, t) {
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	}
	function stat(list, what,    a, n) {
		n = split(list, a, " ")
		sort(a, n)
		if (what == "min") return a[1]
		if (what == "max") return a[n]
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	FNR == NR { names[$3] = 1; v[$3, $1] = v[$3, $1] " " $4; next }
	{ f[$2, $1] = $3 "\t" $4 "\t" $5; if ($2 != "(module load)") fnames[$2] = 1 }
	END {
		for (t in names) list[++n] = t
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (list[j] < list[i]) { s = list[i]; list[i] = list[j]; list[j] = s }
		printf "| test | A usec min/median/max | B usec min/median/max | C usec min/median/max | B/A | C/A |\n"
		printf "| --- | ---: | ---: | ---: | ---: | ---: |\n"
		met = 1
		for (i = 1; i <= n; i++) {
			t = list[i]
			a = stat(v[t, "A"]); b = stat(v[t, "B"]); c = stat(v[t, "C"])
			if (a + 0 == 0) { printf "| %s | A took 0 usec: no ratio |\n", t; met = 0; missed = missed " " t; continue }
			printf "| %s | %d/%d/%d | %d/%d/%d | %d/%d/%d | %.2f | %.2f |\n", t,
				stat(v[t, "A"], "min"), a, stat(v[t, "A"], "max"),
				stat(v[t, "B"], "min"), b, stat(v[t, "B"], "max"),
				stat(v[t, "C"], "min"), c, stat(v[t, "C"], "max"), b / a, c / a
			if (c / a > target) { met = 0; missed = missed " " t }
		}
		printf "\nC/A <= %s on every test (medians): %s\n", target, met ? "met" : "NOT met:" missed
		printf "\n| test | A marks/lazy/remote | B marks/lazy/remote | C marks/lazy/remote | B-A remote | C-A remote |\n"
		printf "| --- | ---: | ---: | ---: | ---: | ---: |\n"
		fmet = 1
		list2[1] = "(module load)"; m = 1
		for (i = 1; i <= n; i++) list2[++m] = list[i]
		for (i = 1; i <= m; i++) {
			t = list2[i]
			split(f[t, "A"], fa, "\t"); split(f[t, "B"], fb, "\t"); split(f[t, "C"], fc, "\t")
			printf "| %s | %s/%s/%s | %s/%s/%s | %s/%s/%s | %d | %d |\n", t,
				fa[1], fa[2], fa[3], fb[1], fb[2], fb[3], fc[1], fc[2], fc[3],
				fb[3] - fa[3], fc[3] - fa[3]
			# Remote fences per mark: B sends several per vmap, C none;
			# what C has beyond A comes from vunmap purges, not marks.
			if (fc[1] + 0 > 0 && (fc[3] - fa[3]) / fc[1] > 0.01) { fmet = 0; fmissed = fmissed " " t }
		}
		printf "\nC sends no remote fence per vmap (C-A remote fences below 1 %% of its marks, the rest being vunmap purges) on every test: %s\n", fmet ? "met" : "NOT met:" fmissed
	}' "$out/times-timing.tsv" "$out/fences-fences.tsv")

qemu=$(qemu-system-riscv64 --version | head -n 1)
host="$(uname -srm), $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1))"
cat >"$results" <<EOF
# New kernel mappings on riscv64: what they cost, measured

Produced by \`make bench-vmap\` (scripts/bench-vmap.sh) on $(date -u +%Y-%m-%d).

- QEMU: $qemu, TCG, \`-machine virt -cpu rv64\`, OpenSBI from Debian's opensbi package
- Host: $host
- Kernel: Debian linux-source-6.1 $(installed_base_version) with the series, allnoconfig plus bench/vmap.config
- Load: lib/test_vmalloc.ko loaded once per test (\`run_test_mask\`), its default single worker, \`test_loop_count=$loops\` (default 1000000)
- Tests reporting failures: $failing_note (align_shift_alloc_test fails by design: it asks for alignments up to 2^63)
- Timing: $rounds rounds on $timing_harts harts, boots alternating ${variants[*]}; each cell is test_vmalloc's "avg" usec (min/median/max over the rounds); $elapsed s of boots in all

Variants, all the series tip:
- A: nothing on a new kernel mapping (bench/variant-A.diff): 6.1's behaviour
- B: a fence on every hart for each new kernel mapping (bench/variant-B.diff): upstream v6.5 to v6.11
- C: the series: every CPU marked, a local sfence.vma on a marked kernel page fault

Targets: C/A at most $target on every test, and C sends no remote fence for a vmap. A is the series tip with marks disabled, so it carries C's boot-time pre-allocation and entry check too (neither runs in these loops: no kernel page fault happens under QEMU); all three time with RISCV_TLB_FENCE_STATS on, which adds a per-CPU increment to C's marks only.

## Time

$report

Fences: one boot per variant on $fence_harts harts. marks: flush_cache_vmap() marks; lazy: sfence.vma at a marked fault; remote: other harts asked to fence for kernel mappings (from /sys/kernel/debug/riscv/tlb_fences, the difference across one load of the module). "(module load)" is the load with no test, whose module mappings and set_memory_*() fences every row includes; vunmap()'s lazy purges fence too, in every variant, at times that vary.

## One lazy fault against one remote fence

From the KUnit suite riscv_flush_cache_vmap (\`lazy_fault_cost\`), the mean of 1000 forced faults on one hart, marked and unmarked, against 1000 one-page flush_tlb_kernel_range() calls (flush_tlb_all() on 6.1: a full fence on every other hart):

$cost
## What TCG cannot show

QEMU never caches an invalid page table entry, so under it no hart ever takes the lazy fence by itself (every "lazy" count above is 0), and C costs what A costs. On a hart that does cache invalid entries, C pays one trap per burst of new mappings, on that hart only, when it touches one: the "lazy fence" line above. QEMU also drops its whole software TLB on any sfence.vma, address or not, so the cost of a fence here includes refilling everything; on hardware an address-specific fence drops one entry.
EOF

echo "$report"
echo
echo "$cost"
note "results written to ${results#"$top"/}"
