# A thin front to scripts/: each target is one script; see README.md.
#
#   make kunit [ARCH=x86_64]  prepare the patched tree, build it, run the
#                             series' KUnit suites under QEMU
#   make e2e [E2E_ARCH=x86_64] end to end under QEMU: on x86_64 nfit_test,
#                             cxl_test, ndctl and cxl, both CPUID modes; on
#                             arm64 cxl_test and a test cache agent
#   make gates                upstream gates: per-patch checkpatch and build,
#                             W=1/C=1 against the base, per-arch builds,
#                             Debian's config, randconfigs, shellcheck
#   make test                 every check (what .ci/run runs)
#   make tree | export | export-check   the developer workflow
#   make bench-vmap           riscv flush_cache_vmap() benchmark (slow; not in test)

ARCH ?= x86_64
E2E_ARCH ?= x86_64

.PHONY: all deps tree export export-check kunit e2e gates test bench-vmap

all: kunit

deps:
	@scripts/install-deps.sh

tree: deps
	@scripts/prepare-tree.sh

export:
	@scripts/export-series.sh

export-check:
	@scripts/export-check.sh

kunit: tree
	@scripts/run-kunit.sh $(ARCH)

e2e: tree
	@E2E_ARCH=$(E2E_ARCH) scripts/run-e2e.sh

gates: tree
	@scripts/run-gates.sh

test: deps
	@scripts/run-tests.sh

bench-vmap: tree
	@scripts/bench-vmap.sh
