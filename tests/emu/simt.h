// The SIMT core of the CPU emulation of the project's CUDA code (`make test-emu`, tests/emu/README.md).
// A launch runs its blocks one after another; the threads of a block are fibers on the one OS
// thread, each run until it exits or waits: at __syncthreads (released when every thread of the
// block that has not exited waits there) or at a warp-wide operation (released when every lane of
// its mask has reached one, which then runs once for the whole warp).
#ifndef PAW_TESTS_EMU_SIMT_H
#define PAW_TESTS_EMU_SIMT_H

#include <cuda_runtime.h>  // dim3, uint3 (types only: the runtime's functions are tests/emu/cudart.cc)
#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <memory>

namespace emu {

// Thread and block coordinates of the fiber running now.
extern uint3 g_thread_idx, g_block_idx;
extern dim3 g_block_dim, g_grid_dim;

// Prints "emulated kernel NAME, block (x,y,z), thread (x,y,z): MESSAGE" and aborts.
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Runs body() once per thread of a grid; smem bytes of dynamic shared memory per block, filled with
// 0xff bytes (a NaN in bf16 and fp32) before each block so that unwritten reads show.
// `pdl`: launched with programmatic dependent launch (the race check orders it after the grid
// before it only from its pdl_wait on).
void run_grid(const char *name, dim3 grid, dim3 block, size_t smem, bool pdl, const std::function<void()> &body);
void *dyn_smem();

// The race-check build's `__shared__` variables (emu.h, EMU_SHARED): one per key and block, in
// the block's shared memory (filled with 0xff bytes), so that each block has its own.
void *shared_static(const void *key, size_t bytes);

// griddepcontrol.wait (kernels/cuda_common.cuh, pdl_enter): in the race-check build, a grid
// launched programmatically is ordered after the grids before it from here on.
void pdl_wait();

// The race-check build: the host (the runtime's copies, fills and frees, and the next launch) is
// ordered after the grids that ran so far. Nothing in the default build.
void host_sync();
// Keeps a launch's arguments alive until the next host_sync: the host may not free what a grid it
// has not synchronised with still reads (the race-check build).
void keep_until_sync(std::shared_ptr<void> p);

// The emulation's own bookkeeping done on a GPU thread's behalf (allocations, fills): in the
// race-check build, not counted as that thread's memory accesses while one of these lives.
struct __attribute__((unused)) Untracked {  // (unused: a scope guard, never read)
#ifdef PAW_EMU_RACE
    Untracked();
    ~Untracked();
#endif
};

void sync_block();  // __syncthreads()

// __threadfence() and the atomics around it, in the race-check build (nothing in the default one):
// a fence then the thread's next atomic releases the thread's accesses so far at the atomic's
// address; an atomic then a fence acquires what was released there. So the "last block to arrive"
// pattern (write, fence, count with an atomic; the last one fences and reads) orders the writes
// before the reads, and a missing fence on either side leaves them racing.
void thread_fence();
void atomic_point(const void *p);  // called by each atomic operation after it (the release covers it)

// One warp-wide operation: each lane of `mask` gives `in` and receives `out` (both on its own
// stack, which stays valid while it waits); when the last lane arrives, combine(ins, outs, mask)
// runs once with every lane's pointers (NULL for lanes outside the mask). `kind` names the
// operation: lanes of one warp meeting at different kinds is a divergence error.
typedef void (*WarpCombine)(const void *const ins[32], void *const outs[32], unsigned mask);
void warp_op(const char *kind, unsigned mask, const void *in, void *out, WarpCombine combine);

// The lane (0..31) of the fiber running now.
int lane_id();

// The thread order within a block (PAW_EMU_ORDER=reverse runs the highest thread first), so
// that a read of another thread's write without a barrier between them gives a wrong value in
// one of the two orders.
int reverse_order();

// The inline PTX of kernels/attention.cu (tests/emu/ptx.cc): mma.sync.m16n8k16 bf16 -> fp32,
// ldmatrix.x4 (.trans), and cp.async of 16 bytes, held back until cp.async.wait_group lets it land.
void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
void ldmatrix_x4(uint32_t r[4], const void *row, bool trans);
void cp_async16(void *dst, const void *src);
void cp_async_commit();
void cp_async_wait(int n);
void cp_async_end_block();

// The runtime's (tests/emu/cudart.cc): an operation on a stream runs now, or is recorded while the
// stream is being captured into a graph; and whether [p, p + n) lies within one device allocation.
void submit(cudaStream_t stream, std::function<void()> op);
bool is_device_range(const void *p, size_t n);

}  // namespace emu

#endif
