// SPDX-License-Identifier: GPL-2.0
/*
 * make e2e's test module for the DEVMEM symbol namespace and for bad input.
 *
 * At load it makes one cpu_cache_invalidate_memregion() call with the
 * request given as module parameters and logs what the call returned; the
 * trace event reports it too. It loads whatever the outcome: insmod
 * retries a module whose init fails (finit_module, then init_module),
 * which would make two calls. With require_support (the default) it first
 * checks cpu_cache_has_invalidate_memregion(), as drivers must, and does
 * not call where that is false.
 *
 * scripts/run-e2e.sh builds it twice: with DEVMEM_NS_TEST_IMPORT defined,
 * it imports the DEVMEM namespace; without, modpost must reject it, and
 * once built anyway the kernel must refuse to load it.
 */
#include <linux/memregion.h>
#include <linux/module.h>
#include <linux/sizes.h>

static unsigned long long start = SZ_4G;
module_param(start, ullong, 0444);
MODULE_PARM_DESC(start, "physical start address of the request");

static unsigned long len = SZ_2M;
module_param(len, ulong, 0444);
MODULE_PARM_DESC(len, "length of the request in bytes");

static bool require_support = true;
module_param(require_support, bool, 0444);
MODULE_PARM_DESC(require_support, "fail with -ENXIO, without calling, where invalidation is not supported");

static int __init devmem_ns_test_init(void)
{
	int ret;

	if (require_support && !cpu_cache_has_invalidate_memregion()) {
		pr_info("not supported: cpu_cache_has_invalidate_memregion() is false\n");
		return 0;
	}
	ret = cpu_cache_invalidate_memregion(start, len);
	pr_info("cpu_cache_invalidate_memregion(%#llx, %#lx) = %d\n",
		start, len, ret);
	return 0;
}
module_init(devmem_ns_test_init);

static void __exit devmem_ns_test_exit(void)
{
}
module_exit(devmem_ns_test_exit);

MODULE_DESCRIPTION("make e2e: DEVMEM namespace and bad input checks");
MODULE_LICENSE("GPL");
#ifdef DEVMEM_NS_TEST_IMPORT
MODULE_IMPORT_NS(DEVMEM);
#endif
