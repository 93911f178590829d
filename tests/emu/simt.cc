// Fibers and their scheduler: see simt.h.
#include "tests/emu/simt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

// The context switch: callee-saved registers and the x87/SSE control words on the old stack, then
// the new stack's. (glibc's swapcontext also saves the signal mask with a system call each time,
// which made it the emulation's largest cost.)
extern "C" void emu_switch(void **save_sp, void *new_sp);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");

namespace emu {

uint3 g_thread_idx, g_block_idx;
dim3 g_block_dim, g_grid_dim;

namespace {

enum State { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_OP, DONE };

struct Fiber {
    void *sp;  // saved stack pointer while it is not running
    char *stack;
    State state;
    uint3 tid;
    int linear;
    const char *kind;  // the warp operation waited at
    unsigned mask;
    const void *in;
    void *out;
    WarpCombine combine;
#ifdef EMU_ASAN
    void *fake_stack;
#endif
};

const size_t STACK_BYTES = (size_t)256 << 10;  // kernels keep their arrays in registers: small frames
const int MAX_THREADS = 1024;

std::vector<Fiber> g_fibers;
void *g_scheduler_sp;
int g_current = -1;
const char *g_kernel = "?";
const std::function<void()> *g_body;
std::vector<unsigned char> g_smem;
int g_reverse = -1;
#ifdef EMU_ASAN
void *g_scheduler_fake_stack;
const void *g_scheduler_bottom;
size_t g_scheduler_size;
#endif

void ensure_fibers(int n) {
    while ((int)g_fibers.size() < n) {
        Fiber f;
        memset(&f, 0, sizeof f);
        // A guard page below each stack: an overflow faults instead of writing into a neighbour.
        void *p = mmap(NULL, STACK_BYTES + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) fail("out of memory for %zu thread stacks", g_fibers.size() + 1);
        if (mprotect(p, 4096, PROT_NONE) != 0) fail("mprotect of a stack guard page failed");
        f.stack = (char *)p + 4096;
        g_fibers.push_back(f);
    }
}

// From a fiber back to the scheduler; `exiting` tells ASan that this fiber's stack is done.
void to_scheduler(bool exiting) {
    Fiber &f = g_fibers[g_current];
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &f.fake_stack, g_scheduler_bottom, g_scheduler_size);
#endif
    emu_switch(&f.sp, g_scheduler_sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, &g_scheduler_bottom, &g_scheduler_size);
#endif
    (void)exiting;
}

void fiber_main() {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &g_scheduler_bottom, &g_scheduler_size);
#endif
    (*g_body)();
    g_fibers[g_current].state = DONE;
    to_scheduler(true);
    fail("a finished thread was resumed");
}

// A fresh stack that emu_switch enters at fiber_main: a null return address for fiber_main (which
// never returns), fiber_main's address for emu_switch's ret, six zero registers, and the control
// words of the scheduler's thread.
void init_stack(Fiber &f) {
    uint64_t *top = (uint64_t *)(f.stack + STACK_BYTES);
    uint32_t mxcsr;
    uint16_t fcw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fcw));
    top[-1] = 0;
    top[-2] = (uint64_t)(uintptr_t)&fiber_main;
    for (int i = 3; i <= 8; i++) top[-i] = 0;
    top[-9] = (uint64_t)mxcsr | (uint64_t)fcw << 32;
    f.sp = &top[-9];
}

void run_fiber(int i) {
    Fiber &f = g_fibers[i];
    g_current = i;
    g_thread_idx = f.tid;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&g_scheduler_fake_stack, f.stack, STACK_BYTES);
#endif
    emu_switch(&g_scheduler_sp, f.sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(g_scheduler_fake_stack, NULL, NULL);
#endif
    g_current = -1;
}

const char *state_name(State s) {
    switch (s) {
    case RUNNABLE: return "running";
    case AT_BLOCK_BARRIER: return "at __syncthreads";
    case AT_WARP_OP: return "at a warp operation";
    default: return "exited";
    }
}

// Releases the warp operations whose lanes have all arrived; 1 if any did.
int release_warps(int nt) {
    int released = 0;
    for (int w = 0; w * 32 < nt; w++) {
        int first = -1;
        for (int l = 0; l < 32 && w * 32 + l < nt; l++)
            if (g_fibers[w * 32 + l].state == AT_WARP_OP) {
                first = w * 32 + l;
                break;
            }
        if (first < 0) continue;
        const Fiber &a = g_fibers[first];
        int complete = 1;
        for (int l = 0; l < 32; l++) {
            int t = w * 32 + l;
            int in_mask = (a.mask >> l) & 1;
            if (t >= nt) {
                if (in_mask) fail("warp operation %s with mask %08x names lane %d of warp %d, which the block (%d threads) does not have", a.kind, a.mask, l, w, nt);
                continue;
            }
            const Fiber &f = g_fibers[t];
            if (f.state == AT_WARP_OP && (f.kind != a.kind || f.mask != a.mask))
                fail("warp %d diverged: lane %d waits at %s (mask %08x), lane %d at %s (mask %08x)", w, first % 32,
                     a.kind, a.mask, l, f.kind, f.mask);
            if (!in_mask) {
                if (f.state == AT_WARP_OP) fail("lane %d of warp %d is not in the mask %08x of its own %s", l, w, f.mask, f.kind);
                continue;
            }
            if (f.state == DONE) fail("warp operation %s with mask %08x: lane %d of warp %d has exited", a.kind, a.mask, l, w);
            if (f.state != AT_WARP_OP) complete = 0;
        }
        if (!complete) continue;
        const void *ins[32];
        void *outs[32];
        for (int l = 0; l < 32; l++) {
            int t = w * 32 + l;
            int in_mask = t < nt && ((a.mask >> l) & 1);
            ins[l] = in_mask ? g_fibers[t].in : NULL;
            outs[l] = in_mask ? g_fibers[t].out : NULL;
        }
        g_current = first;  // for the messages of combine()
        a.combine(ins, outs, a.mask);
        g_current = -1;
        for (int l = 0; l < 32; l++)
            if (((a.mask >> l) & 1) && w * 32 + l < nt) g_fibers[w * 32 + l].state = RUNNABLE;
        released = 1;
    }
    return released;
}

}  // namespace

int reverse_order() {
    if (g_reverse < 0) {
        const char *e = getenv("PAW_EMU_ORDER");
        g_reverse = e && strcmp(e, "reverse") == 0;
    }
    return g_reverse;
}

void fail(const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "emulated kernel %s", g_kernel);
    if (g_current >= 0)
        fprintf(stderr, ", block (%u,%u,%u), thread (%u,%u,%u)", g_block_idx.x, g_block_idx.y, g_block_idx.z,
                g_fibers[g_current].tid.x, g_fibers[g_current].tid.y, g_fibers[g_current].tid.z);
    fprintf(stderr, ": ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

void *dyn_smem() { return g_smem.empty() ? NULL : g_smem.data(); }

int lane_id() {
    if (g_current < 0) fail("a warp operation outside a kernel");
    return g_fibers[g_current].linear % 32;
}

void sync_block() {
    if (g_current < 0) fail("__syncthreads outside a kernel");
    g_fibers[g_current].state = AT_BLOCK_BARRIER;
    to_scheduler(false);
}

void warp_op(const char *kind, unsigned mask, const void *in, void *out, WarpCombine combine) {
    if (g_current < 0) fail("%s outside a kernel", kind);
    Fiber &f = g_fibers[g_current];
    if (!((mask >> (f.linear % 32)) & 1)) fail("%s with mask %08x called by lane %d, which is not in it", kind, mask, f.linear % 32);
    f.kind = kind, f.mask = mask, f.in = in, f.out = out, f.combine = combine;
    f.state = AT_WARP_OP;
    to_scheduler(false);
}

void run_grid(const char *name, dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    int nt = (int)(block.x * block.y * block.z);
    if (nt < 1 || nt > MAX_THREADS) fail("block of %d threads", nt);
    ensure_fibers(nt);
    const char *saved_kernel = g_kernel;
    g_kernel = name, g_body = &body, g_grid_dim = grid, g_block_dim = block;
    g_smem.assign(smem, 0);
    int rev = reverse_order();
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                g_block_idx = make_uint3(bx, by, bz);
                if (smem) memset(g_smem.data(), 0xff, smem);
                for (int t = 0; t < nt; t++) {
                    Fiber &f = g_fibers[t];
                    f.state = RUNNABLE, f.linear = t;
                    f.tid = make_uint3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                    init_stack(f);
                }
                for (;;) {
                    for (int k = 0; k < nt; k++) {
                        int t = rev ? nt - 1 - k : k;
                        if (g_fibers[t].state == RUNNABLE) run_fiber(t);
                    }
                    int done = 0, at_barrier = 0;
                    for (int t = 0; t < nt; t++) {
                        done += g_fibers[t].state == DONE;
                        at_barrier += g_fibers[t].state == AT_BLOCK_BARRIER;
                    }
                    if (done == nt) break;
                    if (release_warps(nt)) continue;
                    if (at_barrier + done == nt) {
                        for (int t = 0; t < nt; t++)
                            if (g_fibers[t].state == AT_BLOCK_BARRIER) g_fibers[t].state = RUNNABLE;
                        continue;
                    }
                    fprintf(stderr, "emulated kernel %s, block (%u,%u,%u): deadlock:\n", name, bx, by, bz);
                    for (int t = 0; t < nt; t++)
                        if (g_fibers[t].state != DONE)
                            fprintf(stderr, "  thread %d %s%s%s\n", t, state_name(g_fibers[t].state),
                                    g_fibers[t].state == AT_WARP_OP ? " " : "",
                                    g_fibers[t].state == AT_WARP_OP ? g_fibers[t].kind : "");
                    abort();
                }
                cp_async_end_block();
            }
    g_kernel = saved_kernel;
}

}  // namespace emu
