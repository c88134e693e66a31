/* remap.c: mremap with MREMAP_DONTUNMAP, whose fifth argument the kernel
 * reads even without MREMAP_FIXED (the ptrace recorder's tests compile and
 * record it).
 *
 * maps 16 pages and writes them; mremap(DONTUNMAP) with an unaligned
 * new_address fails with EINVAL; with the aligned hint 0x200000000000 it
 * moves the pages there (the source stays mapped, empty); then the moved
 * range grows to 64 pages with MREMAP_MAYMOVE. Exit status 0 when every
 * call did what this comment says. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
	size_t len = 16 * 4096;
	char *hint = (char *)0x200000000000UL;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return 1;
	memset(a, 1, len);
	if (mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, hint + 1) != MAP_FAILED
	    || errno != EINVAL)
		return 2;
	char *b = mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, hint);
	if (b != hint || b[0] != 1 || a[0] != 0)
		return 3;
	char *c = mremap(b, len, 4 * len, MREMAP_MAYMOVE);
	if (c == MAP_FAILED || c[4096] != 1)
		return 4;
	return 0;
}
