/* calibrate_smp.c: time the live kernel's memory-management operations for
 * the cost table of `rmaplab smp` (src/rmaplab/report/smp.py).
 *
 * Built and run by bench/calibrate_smp.py; prints one line per figure,
 * "name nanoseconds", each the median of several rounds. Transparent huge
 * pages are refused with MADV_NOHUGEPAGE so every fault is a 4 KiB one. The
 * process pins itself to CPU 0 (the two-CPU figures pin a partner to CPU 1).
 * The swap figures need a swap area (the Python driver makes a temporary
 * swap file when it runs as root) and are skipped without one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE 4096L
#define ROUNDS 7

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static char *map(long pages) {
    char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(p, pages * PAGE, MADV_NOHUGEPAGE);
    return p;
}

static void touch(char *p, long pages) {
    for (long i = 0; i < pages; i++) p[i * PAGE] = (char)i;
}

static void out(const char *name, double ns) { printf("%s %.1f\n", name, ns); fflush(stdout); }

/* null system call */
static void t_syscall(void) {
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        for (int i = 0; i < 100000; i++) syscall(SYS_getppid);
        v[r] = (now() - t) / 100000;
    }
    out("syscall", median(v, ROUNDS));
}

/* mmap and munmap of one unfaulted anonymous page: VMA create and destroy */
static void t_mmap(void) {
    double vm[ROUNDS], vu[ROUNDS];
    enum { N = 20000 };
    static char *ps[N];
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        for (int i = 0; i < N; i++)
            ps[i] = mmap(NULL, PAGE, i & 1 ? PROT_READ : PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        vm[r] = (now() - t) / N;
        t = now();
        for (int i = 0; i < N; i++) munmap(ps[i], PAGE);
        vu[r] = (now() - t) / N;
    }
    out("mmap", median(vm, ROUNDS));
    out("munmap", median(vu, ROUNDS));
}

/* mprotect of the middle page of a 3-page VMA: a split into three, then the
 * reverse, a merge back into one */
static void t_mprotect(void) {
    double v[ROUNDS];
    char *p = map(3);
    touch(p, 3);
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        for (int i = 0; i < 20000; i++) {
            mprotect(p + PAGE, PAGE, PROT_READ);
            mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE);
        }
        v[r] = (now() - t) / 40000;
    }
    out("mprotect_split", median(v, ROUNDS));
    munmap(p, 3 * PAGE);
}

/* faults: first write (anonymous, zero-filled), first read (zero page),
 * a write on a present page (no fault: the user's cost per page), and the
 * munmap of faulted private pages (zap and free) */
static void t_faults(void) {
    enum { P = 16384 };
    double va[ROUNDS], vr[ROUNDS], vu[ROUNDS], vz[ROUNDS], vw[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        char *p = map(P);
        double t = now();
        touch(p, P);
        va[r] = (now() - t) / P;
        t = now();
        for (long i = 0; i < P; i++) memset(p + i * PAGE, (int)r, PAGE);
        vu[r] = (now() - t) / P;
        t = now();
        munmap(p, P * PAGE);
        vz[r] = (now() - t) / P;
        p = map(P);
        volatile char s = 0;
        t = now();
        for (long i = 0; i < P; i++) s += p[i * PAGE];
        vr[r] = (now() - t) / P;
        (void)s;
        /* write after read: the zero page replaced by a new page */
        t = now();
        touch(p, P);
        vw[r] = (now() - t) / P;
        munmap(p, P * PAGE);
    }
    out("fault_anon", median(va, ROUNDS));
    out("user_write_page", median(vu, ROUNDS));
    out("munmap_page", median(vz, ROUNDS));
    out("fault_zero_page", median(vr, ROUNDS));
    out("fault_wp_zero", median(vw, ROUNDS));
}

/* fork of a process with P faulted private pages (child _exits at once):
 * the parent's fork() time; and a child's copy-on-write faults and the zap
 * of pages it still shares (exit's per-pte work without the frees) */
static double fork_time(long pages, int vmas, int faulted) {
    double v[ROUNDS];
    char *p = pages ? map(pages) : NULL;
    if (p) touch(p, pages);
    char **vs = calloc(vmas ? vmas : 1, sizeof *vs);
    for (int i = 0; i < vmas; i++) {
        /* alternate protections so that neighbours never merge */
        vs[i] = mmap(NULL, PAGE, i & 1 ? PROT_READ | PROT_WRITE | PROT_EXEC : PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (faulted) vs[i][0] = 1;
    }
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        pid_t c = fork();
        if (c == 0) _exit(0);
        v[r] = now() - t;
        waitpid(c, NULL, 0);
    }
    if (p) munmap(p, pages * PAGE);
    for (int i = 0; i < vmas; i++) munmap(vs[i], PAGE);
    free(vs);
    return median(v, ROUNDS);
}

static void t_fork(void) {
    double f0 = fork_time(0, 0, 0);
    double fp = fork_time(16384, 0, 0);
    double fv = fork_time(0, 2000, 0);
    double fa = fork_time(0, 2000, 1);
    out("fork", f0);
    out("fork_pte", (fp - f0) / 16384);
    out("fork_vma", (fv - f0) / 2000);
    out("fork_vma_anon", (fa - f0) / 2000);
}

/* exit: fork and wait for a child that _exits at once, less the fork */
static void t_exit(void) {
    double v[ROUNDS], f[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        pid_t c = fork();
        if (c == 0) _exit(0);
        f[r] = now() - t;
        waitpid(c, NULL, 0);
        v[r] = now() - t - f[r];
    }
    out("exit", median(v, ROUNDS));
}

/* read faults on a file's page-cache pages. 6.18 maps up to 16 cached
 * neighbours per read fault (fault-around): a fault on a one-page VMA maps
 * one page (fault_file); a fault every 16 pages of a big VMA maps 16, and
 * the difference gives the cost per page fault-around maps. Also: reading
 * a present page whole (the user's cost per page read) */
static void t_file(void) {
    enum { P = 8192, W = 2048 };
    char path[] = "/tmp/calibrate_smp.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, P * PAGE)) { perror("file"); return; }
    unlink(path);
    char *w = mmap(NULL, P * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    touch(w, P);                                 /* into the page cache */
    munmap(w, P * PAGE);
    double v1[ROUNDS], v16[ROUNDS], u[ROUNDS];
    static char *win[W];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < W; i++)
            win[i] = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, (off_t)i * PAGE);
        volatile long s = 0;
        double t = now();
        for (int i = 0; i < W; i++) s += win[i][0];
        v1[r] = (now() - t) / W;
        for (int i = 0; i < W; i++) munmap(win[i], PAGE);
        char *p = mmap(NULL, P * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
        t = now();
        for (long i = 0; i < P; i += 16) s += p[i * PAGE];
        v16[r] = (now() - t) / (P / 16);
        t = now();
        for (long i = 0; i < P; i++)
            for (long j = 0; j < PAGE; j += 64) s += p[i * PAGE + j];
        u[r] = (now() - t) / P;
        munmap(p, P * PAGE);
    }
    close(fd);
    double f1 = median(v1, ROUNDS), f16 = median(v16, ROUNDS);
    out("fault_file", f1);
    out("fault_around", (f16 - f1) / 15);
    out("user_read_page", median(u, ROUNDS));
}

static void t_cow(void) {
    enum { P = 8192 };
    double vc[ROUNDS], vx[ROUNDS], vreuse[ROUNDS];
    int fd[2];
    for (int r = 0; r < ROUNDS; r++) {
        char *p = map(P);
        touch(p, P);
        if (pipe(fd)) exit(1);
        pid_t c = fork();
        if (c == 0) {
            double t = now();
            touch(p, P / 2);                    /* copy on write */
            double cow = (now() - t) / (P / 2);
            t = now();
            munmap(p + (P / 2) * PAGE, (P / 2) * PAGE);   /* zap of still-shared pages */
            double zap = (now() - t) / (P / 2);
            double res[2] = {cow, zap};
            if (write(fd[1], res, sizeof res) != sizeof res) _exit(1);
            _exit(0);
        }
        double res[2];
        if (read(fd[0], res, sizeof res) != sizeof res) exit(1);
        waitpid(c, NULL, 0);
        vc[r] = res[0];
        vx[r] = res[1];
        /* the child is gone: the parent's write faults reuse its pages */
        double t = now();
        touch(p, P);
        vreuse[r] = (now() - t) / P;
        close(fd[0]);
        close(fd[1]);
        munmap(p, P * PAGE);
    }
    out("fault_cow", median(vc, ROUNDS));
    out("zap_shared_pte", median(vx, ROUNDS));
    out("fault_wp_reuse", median(vreuse, ROUNDS));
}

/* mremap moving P faulted pages, per page and per call */
static void t_mremap(void) {
    enum { P = 4096 };
    double v[ROUNDS];
    /* the destination is one page off the source's alignment within a page
     * table, so that mremap moves pte by pte (not whole page-table pages) */
    char *a = map(P + 1024), *b = map(2 * P + 1024);
    munmap(b, (2 * P + 1024) * PAGE);
    b += 513 * PAGE;
    touch(a, P);
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        char *n = mremap(a, P * PAGE, P * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, b);
        v[r] = (now() - t) / P;
        char *x = a; a = n; b = x;
    }
    out("mremap_pte", median(v, ROUNDS));
    munmap(a, P * PAGE);
}

/* madvise(MADV_DONTNEED) of faulted pages, per page */
static void t_dontneed(void) {
    enum { P = 16384 };
    double v[ROUNDS];
    char *p = map(P);
    for (int r = 0; r < ROUNDS; r++) {
        touch(p, P);
        double t = now();
        madvise(p, P * PAGE, MADV_DONTNEED);
        v[r] = (now() - t) / P;
    }
    out("madvise_dontneed_page", median(v, ROUNDS));
    munmap(p, P * PAGE);
}

/* swap: MADV_PAGEOUT of exclusive faulted pages (rmap walk, unmap, swap
 * entry, writeback submitted), then the faults that take them back from
 * the swap cache. Skipped without swap. */
static void t_swap(void) {
    FILE *f = fopen("/proc/swaps", "r");
    char line[256];
    int have = 0;
    if (f) {
        while (fgets(line, sizeof line, f)) have++;
        fclose(f);
    }
    if (have < 2) { fprintf(stderr, "no swap: swap figures skipped\n"); return; }
    enum { P = 4096 };
    double vo[ROUNDS], vi[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        char *p = map(P);
        touch(p, P);
        double t = now();
        if (madvise(p, P * PAGE, MADV_PAGEOUT)) { perror("MADV_PAGEOUT"); return; }
        vo[r] = (now() - t) / P;
        usleep(200000);                         /* let the writeback finish */
        t = now();
        volatile char s = 0;
        for (long i = 0; i < P; i++) s += p[i * PAGE];
        vi[r] = (now() - t) / P;
        (void)s;
        munmap(p, P * PAGE);
    }
    out("pageout_page", median(vo, ROUNDS));
    out("fault_swap", median(vi, ROUNDS));
}

/* locks: an uncontended spinlock pair, the cache-line handoff between two
 * CPUs (one-way), a context switch (pipe ping-pong on one CPU, per switch),
 * a dependent load that misses every cache, and one that hits L2 */
static atomic_int flag;

static void *pong(void *arg) {
    (void)arg;
    pin(1);
    for (int i = 0; i < 2000000; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 1) ;
        atomic_store_explicit(&flag, 0, memory_order_release);
    }
    return NULL;
}

static void t_locks(void) {
    double v[ROUNDS];
    pthread_spinlock_t l;
    pthread_spin_init(&l, 0);
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        for (int i = 0; i < 1000000; i++) { pthread_spin_lock(&l); pthread_spin_unlock(&l); }
        v[r] = (now() - t) / 1000000;
    }
    out("lock_uncontended", median(v, ROUNDS));

    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        pthread_t th;
        pthread_create(&th, NULL, pong, NULL);
        double t = now();
        for (int i = 0; i < 2000000; i++) {
            atomic_store_explicit(&flag, 1, memory_order_release);
            while (atomic_load_explicit(&flag, memory_order_acquire) != 0) ;
        }
        double rt = (now() - t) / 2000000;
        pthread_join(th, NULL);
        out("lock_handoff", rt / 2);
    }

    int a[2], b[2];
    if (pipe(a) || pipe(b)) exit(1);
    pid_t c = fork();
    if (c == 0) {
        pin(0);
        close(a[1]);
        close(b[0]);
        char x;
        for (;;) {
            if (read(a[0], &x, 1) != 1) _exit(0);
            if (write(b[1], &x, 1) != 1) _exit(0);
        }
    }
    for (int r = 0; r < ROUNDS; r++) {
        char x = 0;
        double t = now();
        for (int i = 0; i < 20000; i++) {
            if (write(a[1], &x, 1) != 1 || read(b[0], &x, 1) != 1) exit(1);
        }
        v[r] = (now() - t) / 40000;
    }
    close(a[1]);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    out("context_switch", median(v, ROUNDS));
}

static double chase(long bytes, long steps) {
    long n = bytes / sizeof(void *);
    /* huge pages, as the kernel's direct map has: the misses are the
     * cache's, not the TLB's */
    void **buf = mmap(NULL, n * sizeof *buf, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(buf, n * sizeof *buf, MADV_HUGEPAGE);
    long *perm = malloc(n * sizeof *perm);
    for (long i = 0; i < n; i++) perm[i] = i;
    srand(1);
    /* one random cycle over cache-line-spaced slots */
    long stride = 64 / sizeof(void *), m = n / stride;
    for (long i = m - 1; i > 0; i--) {
        long j = rand() % (i + 1), x = perm[i]; perm[i] = perm[j]; perm[j] = x;
    }
    for (long i = 0; i < m; i++) buf[perm[i] * stride] = &buf[perm[(i + 1) % m] * stride];
    void **p = &buf[perm[0] * stride];
    for (long i = 0; i < m; i++) p = *p;          /* warm */
    double t = now();
    for (long i = 0; i < steps; i++) p = *p;
    double ns = (now() - t) / steps;
    if (p == NULL) printf("#");
    munmap(buf, n * sizeof *buf);
    free(perm);
    return ns;
}

static void t_memory(void) {
    out("cache_miss", chase(256L << 20, 4000000));
    out("cache_hit_l2", chase(256L << 10, 20000000));
}

int main(int argc, char **argv) {
    pin(0);
    const char *only = argc > 1 ? argv[1] : "";
    struct { const char *name; void (*fn)(void); } all[] = {
        {"syscall", t_syscall}, {"mmap", t_mmap}, {"mprotect", t_mprotect},
        {"faults", t_faults}, {"fork", t_fork}, {"exit", t_exit}, {"file", t_file}, {"cow", t_cow}, {"mremap", t_mremap},
        {"dontneed", t_dontneed}, {"swap", t_swap}, {"locks", t_locks}, {"memory", t_memory},
    };
    for (unsigned i = 0; i < sizeof all / sizeof *all; i++)
        if (!*only || !strcmp(only, all[i].name)) all[i].fn();
    return 0;
}
