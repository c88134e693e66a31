/*
 * live_helper.c: the worker process of rmaplab's live-kernel runs
 * (rmaplab/trace/live.py is the controller).
 *
 * One worker stands in for each process of a trace.  It makes exactly the
 * system calls and memory accesses the controller asks for, one request at
 * a time, over a SOCK_SEQPACKET control socket at fd 3.  It is written
 * freestanding (raw system calls, no libc, static buffers only) so that its
 * own address space is a handful of mappings -- the program image, [stack],
 * [vvar], [vvar_vclock], [vdso] -- that never change while it runs a trace:
 * no heap, no malloc arenas, no TLS, no dynamic loader.  Every change to the
 * address space is then the trace's.  The image has no .bss (every
 * variable is IN_IMAGE), so its last mapping is file-backed and a trace's
 * brk heap, which starts right after it, can never merge into it.
 *
 * Wire format (little-endian):
 *   request: struct request, then `len` bytes of payload.
 *   reply:   struct reply; REPLY_DATA frames carry `len` bytes of read
 *            records and come before the REPLY_DONE frame that ends a
 *            request.  A new image (after spawn or exec) first sends
 *            REPLY_HELLO with its pid and its initial program break.
 *   read record: u16 n, then the first n bytes of the page; n == 0xffff
 *            (and no bytes) marks a page whose load faulted.
 * Build: cc -O2 -static -nostdlib -ffreestanding -fno-stack-protector
 *        -fno-builtin
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;

/* in the file-backed data segment, not in an anonymous .bss mapping */
#define IN_IMAGE __attribute__((section(".data")))

#define PAGE 4096UL
#define CONTROL_FD 3
#define PAYLOAD_MAX (64 * 1024)

/* x86_64 system call numbers */
enum {
	SYS_close = 3, SYS_mmap = 9, SYS_mprotect = 10, SYS_munmap = 11, SYS_brk = 12,
	SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14, SYS_mremap = 25, SYS_madvise = 28,
	SYS_dup2 = 33, SYS_getpid = 39, SYS_sendmsg = 46, SYS_recvmsg = 47,
	SYS_socketpair = 53, SYS_fork = 57, SYS_execve = 59, SYS_sigaltstack = 131,
	SYS_personality = 135, SYS_mlock = 149, SYS_munlock = 150, SYS_prctl = 157,
	SYS_exit_group = 231,
};

#define EINTR 4
#define EINVAL 22
#define SIGBUS 7
#define SIGSEGV 11
#define SIGCHLD 17
#define SIG_IGN 1UL
#define SIG_UNBLOCK 1
#define SA_SIGINFO 0x4UL
#define SA_RESTORER 0x04000000UL
#define SA_ONSTACK 0x08000000UL
#define ADDR_NO_RANDOMIZE 0x0040000UL
#define PR_SET_THP_DISABLE 41
#define AF_UNIX 1
#define SOCK_SEQPACKET 5
#define MSG_NOSIGNAL 0x4000
#define SOL_SOCKET 1
#define SCM_RIGHTS 1

/* the controller's requests (live.py has the same numbers) */
enum {
	OP_MMAP = 1, OP_MUNMAP, OP_MPROTECT, OP_MREMAP, OP_BRK, OP_MADVISE, OP_MLOCK,
	OP_MUNLOCK, OP_TOUCH, OP_READ, OP_FORK, OP_EXEC, OP_EXIT, OP_RECVFD,
};
enum { REPLY_DATA = 0, REPLY_DONE = 1, REPLY_HELLO = 2 };

struct request { u32 op; u32 len; u64 arg[6]; };
struct reply { u32 kind; u32 len; i64 result; u64 aux; };

/* the kernel's structures, as x86_64 lays them out */
struct iovec { const void *base; u64 len; };
struct msghdr {
	void *name; u32 namelen; struct iovec *iov; u64 iovlen;
	void *control; u64 controllen; int flags;
};
struct fd_cmsg { u64 len; int level; int type; int fd; int pad; };	/* CMSG_SPACE(sizeof(int)) */
struct k_sigaction { u64 handler; u64 flags; void (*restorer)(void); u64 mask; };
struct stack_t { void *sp; int flags; u64 size; };
struct siginfo { int signo; int errno_; int code; int pad; void *addr; };

/* ---- system calls ------------------------------------------------------ */

static i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
	i64 ret;
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	register i64 r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys(n, a, b, c, d, e, f) \
	sys6(n, (i64)(a), (i64)(b), (i64)(c), (i64)(d), (i64)(e), (i64)(f))

static __attribute__((noreturn)) void exit_group(int code)
{
	for (;;)
		sys(SYS_exit_group, code, 0, 0, 0, 0, 0);
}

/* ---- fault recovery ------------------------------------------------------
 * save_point() records the callee-saved registers, the stack pointer and
 * the return address, and returns 0; jump_back() restores them and makes
 * that save_point() call return again, with 1.  The fault handler jumps
 * back instead of returning, so a faulting access is abandoned and the
 * worker carries on with the next request.
 */
struct save_area { u64 rbx, rbp, r12, r13, r14, r15, rsp, rip; };

int save_point(struct save_area *s) __attribute__((returns_twice));
__attribute__((noreturn)) void jump_back(struct save_area *s);
void restore_rt(void);

__asm__(".text\n"
	".globl save_point\n"
	"save_point:\n"
	"	mov %rbx, 0(%rdi)\n"
	"	mov %rbp, 8(%rdi)\n"
	"	mov %r12, 16(%rdi)\n"
	"	mov %r13, 24(%rdi)\n"
	"	mov %r14, 32(%rdi)\n"
	"	mov %r15, 40(%rdi)\n"
	"	lea 8(%rsp), %rdx\n"		/* the caller's stack pointer */
	"	mov %rdx, 48(%rdi)\n"
	"	mov (%rsp), %rdx\n"		/* where save_point returns to */
	"	mov %rdx, 56(%rdi)\n"
	"	xor %eax, %eax\n"
	"	ret\n"
	".globl jump_back\n"
	"jump_back:\n"
	"	mov 0(%rdi), %rbx\n"
	"	mov 8(%rdi), %rbp\n"
	"	mov 16(%rdi), %r12\n"
	"	mov 24(%rdi), %r13\n"
	"	mov 32(%rdi), %r14\n"
	"	mov 40(%rdi), %r15\n"
	"	mov 48(%rdi), %rsp\n"
	"	mov $1, %eax\n"
	"	jmp *56(%rdi)\n"
	/* SA_RESTORER is mandatory on x86_64; never reached, as the handler
	   jumps back rather than returning */
	".globl restore_rt\n"
	"restore_rt:\n"
	"	mov $15, %eax\n"		/* rt_sigreturn */
	"	syscall\n"
	"	hlt\n");

static IN_IMAGE struct save_area recovery;
static IN_IMAGE volatile int armed;		/* a fault now is one the controller asked for */
static IN_IMAGE volatile int fault_sig;
static IN_IMAGE volatile u64 fault_addr;
static IN_IMAGE u8 alt_stack[64 * 1024];		/* room for the AVX-512 signal frame */

static void on_fault(int sig, struct siginfo *si, void *uc)
{
	(void)uc;
	if (!armed)		/* a fault in the worker's own code: a bug, die loudly */
		exit_group(128 + sig);
	armed = 0;
	fault_sig = sig;
	fault_addr = (u64)si->addr;
	jump_back(&recovery);
}

/* The handler left through jump_back, not rt_sigreturn, so the signal it
   ran for is still blocked: unblock it, or the next fault kills us. */
static void unblock_faults(void)
{
	u64 set = (1UL << (SIGSEGV - 1)) | (1UL << (SIGBUS - 1));
	sys(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, 0, sizeof set, 0, 0);
}

static void install_handlers(void)
{
	struct stack_t ss = { alt_stack, 0, sizeof alt_stack };
	struct k_sigaction sa = { (u64)on_fault, SA_SIGINFO | SA_RESTORER | SA_ONSTACK,
				  restore_rt, 0 };
	struct k_sigaction ign = { SIG_IGN, SA_RESTORER, restore_rt, 0 };

	sys(SYS_sigaltstack, &ss, 0, 0, 0, 0, 0);
	sys(SYS_rt_sigaction, SIGSEGV, &sa, 0, 8, 0, 0);
	sys(SYS_rt_sigaction, SIGBUS, &sa, 0, 8, 0, 0);
	/* forked workers are reaped by the kernel, never left as zombies */
	sys(SYS_rt_sigaction, SIGCHLD, &ign, 0, 8, 0, 0);
}

/* ---- the control socket ------------------------------------------------ */

static IN_IMAGE u8 in_msg[sizeof(struct request) + PAYLOAD_MAX];
static IN_IMAGE u8 out_buf[PAYLOAD_MAX];
static IN_IMAGE u32 out_len;

static void send_frame(u32 kind, i64 result, u64 aux, const void *data, u32 len, int fd)
{
	struct reply r = { kind, len, result, aux };
	struct iovec iov[2] = { { &r, sizeof r }, { data, len } };
	struct fd_cmsg c = { 20, SOL_SOCKET, SCM_RIGHTS, fd, 0 };	/* CMSG_LEN(4) */
	struct msghdr m = { 0, 0, iov, len ? 2 : 1, 0, 0, 0 };

	if (fd >= 0) {
		m.control = &c;
		m.controllen = sizeof c;
	}
	if (sys(SYS_sendmsg, CONTROL_FD, &m, MSG_NOSIGNAL, 0, 0, 0) < 0)
		exit_group(1);	/* the controller is gone */
}

static void done(i64 result, u64 aux)
{
	send_frame(REPLY_DONE, result, aux, 0, 0, -1);
}

static void flush(void)
{
	if (out_len)
		send_frame(REPLY_DATA, 0, 0, out_buf, out_len, -1);
	out_len = 0;
}

/* One request; an fd passed with it (SCM_RIGHTS) lands in *fd_in. */
static i64 receive(int *fd_in)
{
	struct iovec iov = { in_msg, sizeof in_msg };
	struct fd_cmsg c = { 0, 0, 0, -1, 0 };
	struct msghdr m = { 0, 0, &iov, 1, &c, sizeof c, 0 };
	i64 n;

	do
		n = sys(SYS_recvmsg, CONTROL_FD, &m, 0, 0, 0, 0);
	while (n == -EINTR);
	*fd_in = (m.controllen >= 20 && c.level == SOL_SOCKET && c.type == SCM_RIGHTS) ? c.fd : -1;
	return n;
}

/* ---- memory accesses ------------------------------------------------------ */

/* Load the page's first bytes: its 8-byte head, and if the head is a token
   encoding ("RMT1" + length), the token too.  The first load is the one
   that faults, before anything goes into the output. */
static void read_page(const volatile u8 *p)
{
	u8 head[8];
	u32 n = 8, i, len;

	for (i = 0; i < 8; i++)
		head[i] = p[i];
	if (head[0] == 'R' && head[1] == 'M' && head[2] == 'T' && head[3] == '1') {
		len = head[4] | head[5] << 8 | head[6] << 16 | (u32)head[7] << 24;
		if (len <= PAGE - 8)
			n += len;
	}
	if (out_len + 2 + n > sizeof out_buf)
		flush();
	out_buf[out_len] = n & 0xff;
	out_buf[out_len + 1] = n >> 8;
	for (i = 0; i < 8; i++)
		out_buf[out_len + 2 + i] = head[i];
	for (; i < n; i++)
		out_buf[out_len + 2 + i] = p[i];
	out_len += 2 + n;
}

/* Access `npages` pages from `start` in address order, as the model's touch
   does: a write stores the token at the start of each page, a read loads
   each page's first bytes.  The first fault ends the touch; the pages
   before it were accessed. */
static void touch(u64 start, u64 npages, int write, const u8 *tok, u32 toklen)
{
	static IN_IMAGE volatile u64 i;	/* static: survives jump_back */
	u32 j;

	out_len = 0;
	if (save_point(&recovery)) {
		unblock_faults();
		out_len = 0;	/* a failed read returns no data */
		done(fault_sig, fault_addr);
		return;
	}
	armed = 1;
	for (i = 0; i < npages; i++) {
		volatile u8 *p = (volatile u8 *)(start + i * PAGE);
		if (write)
			for (j = 0; j < toklen; j++)
				p[j] = tok[j];
		else
			read_page(p);
	}
	armed = 0;
	flush();
	done(0, 0);
}

/* The first bytes of each page at `addrs`: ordinary loads, for pages the
   controller knows are present.  A load that faults all the same (a
   PROT_NONE page) gives a 0xffff record and the next page is tried. */
static void read_pages(const u64 *addrs, u64 n)
{
	static IN_IMAGE volatile u64 i;

	out_len = 0;
	for (i = 0; i < n; i++) {
		if (save_point(&recovery)) {
			unblock_faults();
			if (out_len + 2 > sizeof out_buf)
				flush();
			out_buf[out_len++] = 0xff;
			out_buf[out_len++] = 0xff;
			continue;
		}
		armed = 1;
		read_page((const volatile u8 *)addrs[i]);
		armed = 0;
	}
	flush();
	done(0, 0);
}

/* ---- process life ------------------------------------------------------- */

static IN_IMAGE char *self_path, **self_argv, **self_envp;

static void hello(void)
{
	send_frame(REPLY_HELLO, sys(SYS_getpid, 0, 0, 0, 0, 0, 0),
		   sys(SYS_brk, 0, 0, 0, 0, 0, 0), 0, 0, -1);
}

/* The child gets a fresh control socket on fd 3 (and no reply to send);
   the parent passes the other end to the controller with its reply. */
static void fork_worker(void)
{
	int sv[2];
	i64 pid, r = sys(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET, 0, sv, 0, 0);

	if (r < 0) {
		done(r, 0);
		return;
	}
	pid = sys(SYS_fork, 0, 0, 0, 0, 0, 0);
	if (pid == 0) {
		sys(SYS_dup2, sv[1], CONTROL_FD, 0, 0, 0, 0);
		sys(SYS_close, sv[1], 0, 0, 0, 0, 0);
		sys(SYS_close, sv[0], 0, 0, 0, 0, 0);
		return;
	}
	sys(SYS_close, sv[1], 0, 0, 0, 0, 0);
	send_frame(REPLY_DONE, pid, 0, 0, 0, pid > 0 ? sv[0] : -1);
	sys(SYS_close, sv[0], 0, 0, 0, 0, 0);
}

static void serve(void)
{
	for (;;) {
		int fd_in;
		i64 n = receive(&fd_in);
		struct request *rq = (struct request *)in_msg;
		u64 *a = rq->arg;
		const u8 *payload = in_msg + sizeof *rq;

		if (n <= 0)	/* the controller closed the socket, or is gone */
			exit_group(0);
		if ((u64)n < sizeof *rq || sizeof *rq + rq->len != (u64)n) {
			done(-EINVAL, 0);
		} else switch (rq->op) {
		case OP_MMAP:
			done(sys(SYS_mmap, a[0], a[1], a[2], a[3], a[4], a[5]), 0);
			break;
		case OP_MUNMAP:
			done(sys(SYS_munmap, a[0], a[1], 0, 0, 0, 0), 0);
			break;
		case OP_MPROTECT:
			done(sys(SYS_mprotect, a[0], a[1], a[2], 0, 0, 0), 0);
			break;
		case OP_MREMAP:
			done(sys(SYS_mremap, a[0], a[1], a[2], a[3], a[4], 0), 0);
			break;
		case OP_BRK:
			done(sys(SYS_brk, a[0], 0, 0, 0, 0, 0), 0);
			break;
		case OP_MADVISE:
			done(sys(SYS_madvise, a[0], a[1], a[2], 0, 0, 0), 0);
			break;
		case OP_MLOCK:
			done(sys(SYS_mlock, a[0], a[1], 0, 0, 0, 0), 0);
			break;
		case OP_MUNLOCK:
			done(sys(SYS_munlock, a[0], a[1], 0, 0, 0, 0), 0);
			break;
		case OP_TOUCH:
			touch(a[0], a[1], a[2] != 0, payload, rq->len);
			break;
		case OP_READ:
			read_pages((const u64 *)payload, rq->len / 8);
			break;
		case OP_FORK:
			fork_worker();
			break;
		case OP_EXEC:	/* returns only on failure; the new image says hello */
			done(sys(SYS_execve, self_path, self_argv, self_envp, 0, 0, 0), 0);
			break;
		case OP_EXIT:
			exit_group(0);
		case OP_RECVFD:
			done(fd_in >= 0 ? fd_in : -EINVAL, 0);
			fd_in = -1;	/* kept: it is the worker's now */
			break;
		default:
			done(-EINVAL, 0);
		}
		if (fd_in >= 0)
			sys(SYS_close, fd_in, 0, 0, 0, 0, 0);
	}
}

/* Called from _start with the initial stack pointer (argc, argv..., 0,
   envp..., 0). */
__attribute__((noreturn, used)) void start_c(i64 *sp)
{
	i64 persona;

	self_argv = (char **)(sp + 1);
	self_path = self_argv[0];
	self_envp = self_argv + sp[0] + 1;

	/* A deterministic layout: without ADDR_NO_RANDOMIZE, set it and start
	   over, as the layout is chosen at execve. */
	persona = sys(SYS_personality, 0xffffffffUL, 0, 0, 0, 0, 0);
	if (persona >= 0 && !(persona & ADDR_NO_RANDOMIZE)) {
		sys(SYS_personality, persona | ADDR_NO_RANDOMIZE, 0, 0, 0, 0, 0);
		sys(SYS_execve, self_path, self_argv, self_envp, 0, 0, 0);
		exit_group(127);
	}
	/* no transparent huge pages: the model has 4 KiB pages only */
	sys(SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0, 0);
	install_handlers();
	hello();
	serve();
	exit_group(0);
}

__asm__(".text\n"
	".globl _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call start_c\n"
	"	hlt\n");
