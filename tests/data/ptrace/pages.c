/* pages.c: writes a known set of pages of a 64 MiB mapping (the ptrace
 * recorder's tests compile and record it).
 *
 *   pages N
 *
 * maps 64 MiB (private, anonymous), writes pages 3*i for i < N and the
 * 8 pages 8192..8199, reads page 12000; forks a child that writes pages 0
 * and 3 (copies on write), reads page 6 and exits; then the parent
 * discards pages 8192..8195 (MADV_DONTNEED), writes page 8192 again and
 * unmaps everything. Pages are 4096 bytes; page k is at p + 4096 * k. */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG(k) (p + 4096UL * (k))

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10;
	size_t len = 64UL << 20;
	volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || n < 2 || n > 2730)
		return 2;
	for (long i = 0; i < n; i++)
		*PG(3 * i) = 1;
	for (long k = 8192; k < 8200; k++)
		*PG(k) = 2;
	volatile char c = *PG(12000);
	pid_t pid = fork();
	if (pid == 0) {
		*PG(0) = 3;
		*PG(3) = 3;
		c = *PG(6);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, NULL, 0) != pid)
		return 3;
	if (madvise((void *)PG(8192), 4 * 4096, MADV_DONTNEED) != 0)
		return 4;
	*PG(8192) = 4;
	(void)c;
	return munmap((void *)p, len) == 0 ? 0 : 5;
}
