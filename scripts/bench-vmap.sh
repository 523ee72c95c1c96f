#!/usr/bin/env bash
# make bench-vmap: what flush_cache_vmap() costs on riscv64. Builds three
# variants of the series kernel and boots them under QEMU riscv64 -smp 4,
# alternating A B C for $BENCH_ROUNDS rounds; each boot loads
# lib/test_vmalloc.ko with its default tests. Prints per test the median
# time of each variant, the ratios B/A and C/A, the flush counts, and
# writes bench/vmap-results.md.
#   A  without flush_cache_vmap() (6.1's unsafe behaviour)
#   B  flush_cache_vmap() with the global flush
#   C  flush_cache_vmap() with the ranged flush (the series)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

rounds=${BENCH_ROUNDS:-3}
# test_vmalloc's default is 1000000 loops per test: hours under TCG.
# Its tests, its one worker thread and their order stay the defaults.
loops=${BENCH_LOOPS:-10000}
cpus=4
target=1.10
out="$build_dir/bench-vmap"
results="$top/bench/vmap-results.md"
opensbi=/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin
cross=riscv64-linux-gnu-

[ -e "$tree/.git" ] || die "no work tree at build/linux (run: make tree)"
[ -f "$opensbi" ] || die "$opensbi is missing (run: make deps)"
mkdir -p "$out"

# commit_of SUBJECT: the series commit with that subject.
commit_of() {
	local c
	c=$(tgit log --format='%H%x09%s' "$base_tag..$series_branch" |
		awk -F'\t' -v s="$1" '$2 == s { print $1 }')
	[ -n "$c" ] || die "no commit \"$1\" in build/linux's series"
	echo "$c"
}

tip=$(tgit rev-parse "$series_branch")
r_vmap=$(commit_of "riscv: implement flush_cache_vmap()")
r_count=$(commit_of "riscv: count the kernel TLB flushes flush_cache_vmap() causes")
r_ranged=$(commit_of "riscv: flush kernel TLB ranges by address up to a threshold")

# The variants: the series tip, less the commits each one reverts.
declare -A reverts=(
	[A]="$r_ranged $r_count $r_vmap"
	[B]="$r_ranged"
	[C]=""
)

# prepare_variant V: its source (a worktree of build/linux) and kernel.
prepare_variant() {
	local v=$1 src="$out/$1/src" obj="$out/$1/obj" key c
	key="$tip ${reverts[$v]}"
	if [ "$(cat "$out/$v/key" 2>/dev/null || true)" != "$key" ]; then
		note "variant $v: preparing sources"
		# A worktree of an earlier build/linux is of no use: start anew.
		if ! git -C "$src" rev-parse -q --verify "$tip^{commit}" >/dev/null 2>&1; then
			rm -rf "$src"
			tgit worktree prune
			tgit worktree add -q --detach "$src" "$tip" ||
				die "variant $v: git worktree add failed"
		fi
		git -C "$src" checkout -q -f --detach "$tip"
		for c in ${reverts[$v]}; do
			git -C "$src" -c user.name=bench -c user.email=bench@localhost \
				revert --no-edit "$c" >/dev/null ||
				die "variant $v: reverting $(tgit log -1 --format=%s "$c") failed"
		done
		echo "$key" > "$out/$v/key"
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

# boot V ROUND HARTS TAG: one boot; appends its per-test times, flush
# counts and failures to $out/{times,counts,failures}-TAG.tsv.
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
	# Failures are compared across variants at the end.
	awk -v v="$v" '/Summary: .* failed: [1-9]/ {
		for (i = 1; i <= NF; i++) if ($i == "Summary:") print $(i + 1) "\t" v
	}' "$log" >>"$out/failures-$tag.tsv"
	# Per test, the mean over the workers of their average time.
	awk -v v="$v" -v r="$r" '
		/Summary: / {
			for (i = 1; i <= NF; i++) {
				if ($i == "Summary:") name = $(i + 1)
				if ($i == "avg:") { sum[name] += $(i + 1); n[name]++ }
			}
		}
		END { for (t in sum) printf "%s\t%s\t%s\t%.0f\n", v, r, t, sum[t] / n[t] }
	' "$log" >>"$out/times-$tag.tsv"
	awk -v v="$v" -v r="$r" '
		/^bench-vmap: before: ranged/ { r0 = $4; f0 = $6 }
		/^bench-vmap: after: ranged/ { printf "%s\t%s\t%d\t%d\n", v, r, $4 - r0, $6 - f0; found = 1 }
		END { if (!found) printf "%s\t%s\t-\t-\n", v, r }
	' "$log" >>"$out/counts-$tag.tsv"
}

"${cross}gcc" -static -O2 -Wall -o "$out/init" "$top/bench/vmap-init.c" ||
	die "could not build bench/vmap-init.c with ${cross}gcc"
echo "test_loop_count=$loops" >"$out/params"

for v in A B C; do
	prepare_variant "$v"
done

rm -f "$out"/times-*.tsv "$out"/counts-*.tsv "$out"/failures-*.tsv
touch "$out/failures-smp$cpus.tsv"
start=$SECONDS
for r in $(seq 1 "$rounds"); do
	for v in A B C; do
		note "round $r/$rounds: variant $v, $cpus harts"
		boot "$v" "$r" "$cpus" "smp$cpus"
	done
done
# The control: A and C once more on one hart, where a flush reaches no
# other hart. If C/A is near 1 there, the cost at $cpus harts is the
# remote part of the flush.
for v in A C; do
	note "control: variant $v, 1 hart"
	boot "$v" 1 1 smp1
done
elapsed=$((SECONDS - start))

# A test may fail by design (align_shift_alloc_test asks for alignments
# up to 2^63, which vmalloc cannot give); one that fails only in some
# variants is a regression of theirs.
failing=$(cut -f1 "$out/failures-smp$cpus.tsv" | sort -u)
for t in $failing; do
	in=$(awk -F'\t' -v t="$t" '$1 == t { print $2 }' "$out/failures-smp$cpus.tsv" | sort -u | paste -sd' ')
	[ "$in" = "A B C" ] ||
		die "$t fails in variant(s) $in only (logs: ${out#"$top"/}/*/boot-*.log)"
done
failing_note="none"
[ -z "$failing" ] || failing_note="$(echo "$failing" | paste -sd' '), in every variant and round"

# The report: medians over rounds, ratios to A, flush counts.
report=$(awk -F'\t' -v target="$target" '
	function median(list,    a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	FNR == NR { t[$3] = t[$3] " " $4; v[$3, $1] = v[$3, $1] " " $4; next }
	{ c[$1, "ranged"] = c[$1, "ranged"] " " $3; c[$1, "full"] = c[$1, "full"] " " $4 }
	END {
		printf "| test | A usec | B usec | C usec | B/A | C/A |\n"
		printf "| --- | ---: | ---: | ---: | ---: | ---: |\n"
		met = 1
		for (name in t) names[++n] = name
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (names[j] < names[i]) { s = names[i]; names[i] = names[j]; names[j] = s }
		for (i = 1; i <= n; i++) {
			name = names[i]
			a = median(v[name, "A"]); b = median(v[name, "B"]); cc = median(v[name, "C"])
			printf "| %s | %d | %d | %d | %.2f | %.2f |\n", name, a, b, cc, b / a, cc / a
			if (cc / a > target) met = 0
		}
		printf "\n| variant | ranged flushes | full flushes |\n| --- | ---: | ---: |\n"
		split("A B C", vs, " ")
		for (i = 1; i <= 3; i++) {
			r = c[vs[i], "ranged"]; f = c[vs[i], "full"]
			if (r ~ /-/) printf "| %s | n/a (no counters) | n/a |\n", vs[i]
			else printf "| %s | %d | %d |\n", vs[i], median(r), median(f)
		}
		printf "\nC/A <= %s on every test: %s\n", target, met ? "met" : "NOT met"
	}' "$out/times-smp$cpus.tsv" "$out/counts-smp$cpus.tsv")

control=$(awk -F'\t' '
	{ v[$3, $1] = $4; names[$3] = 1 }
	END {
		printf "| test | A usec | C usec | C/A |\n| --- | ---: | ---: | ---: |\n"
		for (t in names) list[++n] = t
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (list[j] < list[i]) { s = list[i]; list[i] = list[j]; list[j] = s }
		for (i = 1; i <= n; i++)
			printf "| %s | %d | %d | %.2f |\n", list[i], v[list[i], "A"], v[list[i], "C"],
				v[list[i], "C"] / v[list[i], "A"]
	}' "$out/times-smp1.tsv")

qemu=$(qemu-system-riscv64 --version | head -n 1)
host="$(uname -srm), $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1))"
cat >"$results" <<EOF
# flush_cache_vmap() on riscv64: cost of the flush, measured

Produced by \`make bench-vmap\` (scripts/bench-vmap.sh) on $(date -u +%Y-%m-%d).

- QEMU: $qemu, TCG, \`-machine virt -cpu rv64 -smp $cpus\`, OpenSBI from Debian's opensbi package
- Host: $host
- Kernel: Debian linux-source-6.1 $(installed_base_version) with the series, allnoconfig plus bench/vmap.config
- Load: lib/test_vmalloc.ko with its default tests and its default single worker thread, \`test_loop_count=$loops\` (default 1000000); each vmap() of a test flushes on all $cpus harts
- Tests reporting failures: $failing_note (align_shift_alloc_test fails by design: it asks for alignments up to 2^63)
- $rounds rounds, boots alternating A B C; each cell is the median over the rounds of the mean over the workers of test_vmalloc's "avg" usec; $elapsed s of boots in all

Variants, all the series tip:
- A: without flush_cache_vmap() (reverts the three riscv flush patches): 6.1's unsafe behaviour
- B: flush_cache_vmap() with the global flush (reverts "riscv: flush kernel TLB ranges by address up to a threshold")
- C: flush_cache_vmap() with the ranged flush: the series

Target: C/A at most $target on every test. Where the time goes: bench/README.md.

$report

Flush counts are those flush_cache_vmap() caused during one boot's test run (median over rounds), from /sys/kernel/debug/flush_cache_vmap.

## Control: one hart

The same A and C kernels and load, one boot each with \`-smp 1\`, where a
flush reaches no other hart:

$control
EOF

echo "$report"
echo
echo "control, 1 hart:"
echo "$control"
note "results written to ${results#"$top"/}"
