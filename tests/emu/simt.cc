// Fibers and their scheduler: see simt.h.
#include "tests/emu/simt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <memory>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

// The race-check build (`make test-race`, tests/emu/README.md): this file is not instrumented; it
// tells ThreadSanitizer which GPU thread runs, and where the GPU orders their memory accesses.
#ifdef PAW_EMU_RACE
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin(void);  // exported by the runtime, not in its header
extern "C" void __tsan_ignore_thread_end(void);
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
#ifdef PAW_EMU_RACE
    void *tsan;        // its ThreadSanitizer fiber
    int barriers;      // the __syncthreads it has passed in this block
    int syncwarps;     // the __syncwarp it has passed in this block
    unsigned peers;    // set when a __syncwarp releases: bit l = parity of lane l's count there
    bool fenced;       // a __threadfence since its last atomic: the next atomic releases
    const void *last_atomic;  // the address of its last atomic: a __threadfence acquires there
#endif
};

const size_t STACK_BYTES = (size_t)256 << 10;  // kernels keep their arrays in registers: small frames
const int MAX_THREADS = 1024;

// The threads (fibers) and shared memory that blocks run on. The race-check build has four: a grid
// takes pools 0-1 or 2-3, the other pair than the grid before it (which a programmatic launch may
// overlap), and uses its two in a checkerboard (by the parity of x + y + z), so that neighbouring
// blocks never share a thread's stack or shared memory. A block is ordered after the blocks of its
// own pool that ran before it (they left it their stacks and shared memory), never after its
// neighbours, so memory that two neighbouring blocks touch without synchronisation is a race that
// ThreadSanitizer reports.
struct Pool {
    std::vector<Fiber> fibers;
    std::vector<unsigned char> smem;  // the default build's dynamic shared memory
#ifdef PAW_EMU_RACE
    unsigned char *arena;  // ARENA_BYTES: the dynamic shared memory, then the static variables
    size_t dyn_bytes, static_end, high_water;  // high_water: the most of the arena a block has used
    std::vector<std::pair<const void *, size_t>> statics;  // a variable's key -> its offset
    unsigned long block;   // the blocks this pool ran before the one running
    char block_end[2];     // by the parity of `block`: its threads release when they exit, the next block's acquire
    char barrier[2];       // __syncthreads: released and acquired by the parity of the count
    char lane[MAX_THREADS][2];  // __syncwarp: per thread, by the parity of its count
#endif
};
#ifdef PAW_EMU_RACE
Pool g_pools[4];
#else
Pool g_pools[1];
#endif
Pool *g_pool = &g_pools[0];
#define g_fibers (g_pool->fibers)

void *g_scheduler_sp;
int g_current = -1;
const char *g_kernel = "?";
const std::function<void()> *g_body;
int g_reverse = -1;
#ifdef PAW_EMU_RACE
const size_t ARENA_BYTES = (size_t)256 << 10;  // above the 227 KiB of shared memory a block may have
char g_launch;    // the host releases here before each grid, whose threads acquire it
unsigned long g_grids;  // grids run so far
char g_grid_end[2];     // by the parity of the grid: every thread releases here when it exits; the
                        // host acquires them lazily (host_sync), a programmatic launch at pdl_wait
bool g_grid_pending;  // a grid has ended since the host last acquired g_grid_end
bool g_grid_pdl;      // the grid running was launched with programmatic dependent launch
void *g_host_fiber;
#endif
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
#ifdef PAW_EMU_RACE
        f.tsan = __tsan_create_fiber(0);
        char name[64];
        snprintf(name, sizeof name, "GPU thread %zu of pool %d", g_fibers.size(), (int)(g_pool - g_pools));
        __tsan_set_fiber_name(f.tsan, name);
#endif
        g_fibers.push_back(f);
    }
}

// From a fiber back to the scheduler; `exiting` tells ASan that this fiber's stack is done.
void to_scheduler(bool exiting) {
    Fiber &f = g_fibers[g_current];
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &f.fake_stack, g_scheduler_bottom, g_scheduler_size);
#endif
#ifdef PAW_EMU_RACE
    __tsan_switch_to_fiber(g_host_fiber, __tsan_switch_to_fiber_no_sync);
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
#ifdef PAW_EMU_RACE
    // After the host's work before the launch (unless the launch was programmatic: then only at
    // its griddepcontrol.wait, pdl_wait) and after the blocks its stacks and shared memory served.
    __tsan_acquire(&g_launch);
    __tsan_acquire(&g_pool->block_end[(g_pool->block + 1) & 1]);
#endif
    (*g_body)();
#ifdef PAW_EMU_RACE
    __tsan_release(&g_pool->block_end[g_pool->block & 1]);
    __tsan_release(&g_grid_end[g_grids & 1]);
#endif
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
#ifdef PAW_EMU_RACE
    __tsan_switch_to_fiber(f.tsan, __tsan_switch_to_fiber_no_sync);
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
#ifdef PAW_EMU_RACE
        unsigned parities = 0;
        for (int l = 0; l < 32; l++)
            if (((a.mask >> l) & 1) && w * 32 + l < nt) parities |= (unsigned)(g_fibers[w * 32 + l].syncwarps & 1) << l;
        for (int l = 0; l < 32; l++)
            if (((a.mask >> l) & 1) && w * 32 + l < nt) g_fibers[w * 32 + l].peers = parities;
#endif
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

#ifdef PAW_EMU_RACE
Untracked::Untracked() { __tsan_ignore_thread_begin(); }
Untracked::~Untracked() { __tsan_ignore_thread_end(); }

void *dyn_smem() { return g_pool->dyn_bytes ? g_pool->arena : NULL; }

void *shared_static(const void *key, size_t bytes) {
    if (g_current < 0) fail("a __shared__ variable outside a kernel");
    Untracked u;
    Pool &p = *g_pool;
    for (auto &kv : p.statics)
        if (kv.first == key) return p.arena + kv.second;
    size_t off = (p.static_end + 127) / 128 * 128;
    if (off + bytes > ARENA_BYTES) fail("%zu bytes of shared memory, more than the %zu the emulation has", off + bytes, ARENA_BYTES);
    p.statics.push_back(std::make_pair(key, off));
    p.static_end = off + bytes;
    if (p.static_end > p.high_water) {  // filled here the first time; with the block's fill after
        memset(p.arena + off, 0xff, bytes);
        p.high_water = p.static_end;
    }
    return p.arena + off;
}

std::vector<std::shared_ptr<void>> g_kept;  // launches' arguments the grids ran since the last host_sync

void keep_until_sync(std::shared_ptr<void> p) { g_kept.push_back(std::move(p)); }

void host_sync() {
    if (g_grid_pending) __tsan_acquire(&g_grid_end[0]), __tsan_acquire(&g_grid_end[1]);
    g_grid_pending = false;
    g_kept.clear();
}

void pdl_wait() {
    if (g_current < 0) fail("griddepcontrol.wait outside a kernel");
    if (g_grid_pdl) __tsan_acquire(&g_grid_end[(g_grids + 1) & 1]);  // the grid before this one
}

void thread_fence() {
    if (g_current < 0) fail("__threadfence outside a kernel");
    Fiber &f = g_fibers[g_current];
    if (f.last_atomic) __tsan_acquire(const_cast<void *>(f.last_atomic));
    f.fenced = true;
}

void atomic_point(const void *p) {
    if (g_current < 0) fail("an atomic operation outside a kernel");
    Fiber &f = g_fibers[g_current];
    if (f.fenced) __tsan_release(const_cast<void *>(p));
    f.fenced = false, f.last_atomic = p;
}
#else
void *dyn_smem() { return g_pool->smem.empty() ? NULL : g_pool->smem.data(); }
void keep_until_sync(std::shared_ptr<void>) {}
void host_sync() {}
void pdl_wait() {}
void thread_fence() {}
void atomic_point(const void *) {}
#endif

int lane_id() {
    if (g_current < 0) fail("a warp operation outside a kernel");
    return g_fibers[g_current].linear % 32;
}

void sync_block() {
    if (g_current < 0) fail("__syncthreads outside a kernel");
    Fiber &f = g_fibers[g_current];
    f.state = AT_BLOCK_BARRIER;
#ifdef PAW_EMU_RACE
    // All of a block's threads arrive (release) before any leaves (acquires); the next barrier
    // uses the other object, so a thread that is already past this one adds nothing to it.
    __tsan_release(&g_pool->barrier[f.barriers & 1]);
    to_scheduler(false);
    __tsan_acquire(&g_pool->barrier[f.barriers & 1]);
    f.barriers++;
#else
    to_scheduler(false);
#endif
}

void warp_op(const char *kind, unsigned mask, const void *in, void *out, WarpCombine combine) {
    if (g_current < 0) fail("%s outside a kernel", kind);
    Fiber &f = g_fibers[g_current];
    if (!((mask >> (f.linear % 32)) & 1)) fail("%s with mask %08x called by lane %d, which is not in it", kind, mask, f.linear % 32);
    f.kind = kind, f.mask = mask, f.in = in, f.out = out, f.combine = combine;
    f.state = AT_WARP_OP;
#ifdef PAW_EMU_RACE
    // __syncwarp orders memory among its lanes; shuffles and the other warp operations do not
    // (CUDA C++ Programming Guide), so they exchange values without any happens-before.
    if (strcmp(kind, "__syncwarp") == 0) {
        int warp = f.linear - f.linear % 32;
        __tsan_release(&g_pool->lane[f.linear][f.syncwarps & 1]);
        to_scheduler(false);
        Fiber &g = g_fibers[g_current];
        for (int l = 0; l < 32; l++)
            if ((mask >> l) & 1) __tsan_acquire(&g_pool->lane[warp + l][(g.peers >> l) & 1]);
        g.syncwarps++;
        return;
    }
#endif
    to_scheduler(false);
}

void run_grid(const char *name, dim3 grid, dim3 block, size_t smem, bool pdl, const std::function<void()> &body) {
    int nt = (int)(block.x * block.y * block.z);
    if (nt < 1 || nt > MAX_THREADS) fail("block of %d threads", nt);
    const char *saved_kernel = g_kernel;
    g_kernel = name, g_body = &body, g_grid_dim = grid, g_block_dim = block;
#ifdef PAW_EMU_RACE
    if (!g_host_fiber) g_host_fiber = __tsan_get_current_fiber();
    if (smem > ARENA_BYTES) fail("%zu bytes of dynamic shared memory, more than the %zu the emulation has", smem, ARENA_BYTES);
    g_grid_pdl = pdl;
    if (!pdl) host_sync();
    for (Pool &p : g_pools) {
        Pool *saved = g_pool;
        g_pool = &p;
        ensure_fibers(nt);
        g_pool = saved;
        if (!p.arena) {
            void *a = mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (a == MAP_FAILED) fail("out of memory for shared memory");
            p.arena = (unsigned char *)a;
        }
    }
    __tsan_release(&g_launch);
#else
    (void)pdl;
    ensure_fibers(nt);
    g_pool->smem.assign(smem, 0);
#endif
    // Blocks in order, or the last first (PAW_EMU_ORDER=reverse): a kernel that counts on which
    // block runs first or last gives a wrong result in one of the two orders.
    int rev = reverse_order();
    const size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    for (size_t i = 0; i < nblocks; i++) {
        const size_t lin = rev ? nblocks - 1 - i : i;
        const unsigned bx = (unsigned)(lin % grid.x), by = (unsigned)(lin / grid.x % grid.y),
                       bz = (unsigned)(lin / ((size_t)grid.x * grid.y));
        g_block_idx = make_uint3(bx, by, bz);
#ifdef PAW_EMU_RACE
        g_pool = &g_pools[(g_grids & 1) * 2 + ((bx + by + bz) & 1)];
        {
            Untracked u;  // the emulation's fill, not a write of the host
            memset(g_pool->arena, 0xff, smem > g_pool->high_water ? smem : g_pool->high_water);
        }
        g_pool->dyn_bytes = smem, g_pool->static_end = smem;
        g_pool->statics.clear();
#else
        if (smem) memset(g_pool->smem.data(), 0xff, smem);
#endif
        for (int t = 0; t < nt; t++) {
            Fiber &f = g_fibers[t];
            f.state = RUNNABLE, f.linear = t;
#ifdef PAW_EMU_RACE
            f.barriers = 0, f.syncwarps = 0, f.fenced = false, f.last_atomic = NULL;
#endif
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
#ifdef PAW_EMU_RACE
        g_pool->block++;
#endif
    }
#ifdef PAW_EMU_RACE
    g_grid_pending = true;
    g_grids++;
    g_pool = &g_pools[0];
#endif
    g_kernel = saved_kernel;
}

}  // namespace emu
