// The inline-PTX operations of kernels/attention.cu as warp-wide operations of the CPU emulation
// (tests/emu/README.md), with the fragment layouts of the PTX ISA for mma.m16n8k16 (bf16 in,
// fp32 accumulate, A row-major, B column-major) and ldmatrix .m8n8.x4 (.trans); and cp.async,
// whose copies are held back until the thread waits for their group, as on the hardware.
#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

#include <deque>
#include <map>
#include <vector>

#include "tests/emu/simt.h"

// The race-check build: this file is not instrumented, so the memory its operations read and write
// for a thread is told to ThreadSanitizer as that thread's; its own bookkeeping (allocations made
// on a GPU thread's behalf, freed by the scheduler) is Untracked (simt.h).
#ifdef PAW_EMU_RACE
extern "C" void __tsan_read16(void *addr);
extern "C" void __tsan_write16(void *addr);
#endif

namespace emu {

namespace {

float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
float lo(uint32_t r) { return bits_to_float(r << 16); }
float hi(uint32_t r) { return bits_to_float(r & 0xffff0000u); }

struct MmaIn {
    float d[4];
    uint32_t a[4], b[2];
};

void mma_combine(const void *const ins[32], void *const outs[32], unsigned mask) {
    if (mask != 0xffffffffu) fail("mma.sync with mask %08x: the whole warp must take part", mask);
    float A[16][16], B[16][8];  // B[k][n]
    for (int l = 0; l < 32; l++) {
        const MmaIn *in = (const MmaIn *)ins[l];
        int g = l >> 2, t = (l & 3) * 2;
        A[g][t] = lo(in->a[0]), A[g][t + 1] = hi(in->a[0]);
        A[g + 8][t] = lo(in->a[1]), A[g + 8][t + 1] = hi(in->a[1]);
        A[g][t + 8] = lo(in->a[2]), A[g][t + 9] = hi(in->a[2]);
        A[g + 8][t + 8] = lo(in->a[3]), A[g + 8][t + 9] = hi(in->a[3]);
        B[t][g] = lo(in->b[0]), B[t + 1][g] = hi(in->b[0]);
        B[t + 8][g] = lo(in->b[1]), B[t + 9][g] = hi(in->b[1]);
    }
    for (int l = 0; l < 32; l++) {
        const MmaIn *in = (const MmaIn *)ins[l];
        float *d = (float *)outs[l];
        int g = l >> 2, t = (l & 3) * 2;
        const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {t, t + 1, t, t + 1};
        for (int i = 0; i < 4; i++) {
            float acc = in->d[i];
            for (int k = 0; k < 16; k++) acc += A[rows[i]][k] * B[k][cols[i]];
            d[i] = acc;
        }
    }
}

template <bool TRANS>
void ldmatrix_combine(const void *const ins[32], void *const outs[32], unsigned mask) {
    if (mask != 0xffffffffu) fail("ldmatrix with mask %08x: the whole warp must take part", mask);
    const uint16_t *rows[32];
    for (int l = 0; l < 32; l++) {
        rows[l] = *(const uint16_t *const *)ins[l];
        if ((uintptr_t)rows[l] % 16) fail("ldmatrix: lane %d's row address %p is not 16-byte aligned", l, (const void *)rows[l]);
    }
    for (int l = 0; l < 32; l++) {
        uint32_t *r = (uint32_t *)outs[l];
        for (int i = 0; i < 4; i++) {
            uint16_t e[2];
            for (int j = 0; j < 2; j++)
                e[j] = TRANS ? rows[8 * i + (l & 3) * 2 + j][l >> 2] : rows[8 * i + (l >> 2)][(l & 3) * 2 + j];
            r[i] = (uint32_t)e[0] | (uint32_t)e[1] << 16;
        }
    }
}

// cp.async: per thread, the committed groups (oldest first) and the copies not yet committed.
struct Copy {
    void *dst;
    const void *src;
};
struct Pending {
    std::deque<std::vector<Copy>> groups;
    std::vector<Copy> open;
};
std::map<long, Pending> g_pending;  // key: the thread's (block, thread) coordinates

long thread_key() {
    return ((((long)g_block_idx.z * g_grid_dim.y + g_block_idx.y) * g_grid_dim.x + g_block_idx.x) * 1024) +
           (long)(g_thread_idx.z * g_block_dim.y + g_thread_idx.y) * g_block_dim.x + g_thread_idx.x;
}

}  // namespace

void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    MmaIn in;
    memcpy(in.d, d, sizeof in.d), memcpy(in.a, a, sizeof in.a);
    in.b[0] = b0, in.b[1] = b1;
    float out[4];
    warp_op("mma.sync", 0xffffffffu, &in, out, mma_combine);
    memcpy(d, out, sizeof out);
}

void ldmatrix_x4(uint32_t r[4], const void *row, bool trans) {
#ifdef PAW_EMU_RACE
    __tsan_read16(const_cast<void *>(row));  // each lane's row, read as the warp's operation
#endif
    warp_op(trans ? "ldmatrix.trans" : "ldmatrix", 0xffffffffu, &row, r,
            trans ? ldmatrix_combine<true> : ldmatrix_combine<false>);
}

void cp_async16(void *dst, const void *src) {
    if ((uintptr_t)dst % 16 || (uintptr_t)src % 16) fail("cp.async of 16 bytes from %p to %p: not 16-byte aligned", src, dst);
    if (!is_device_range(src, 16)) fail("cp.async from %p: not within a device allocation", src);
    Untracked u;
    g_pending[thread_key()].open.push_back(Copy{dst, src});
}

void cp_async_commit() {
    Untracked u;
    Pending &p = g_pending[thread_key()];
    p.groups.push_back(p.open);
    p.open.clear();
}

void cp_async_wait(int n) {
    auto it = g_pending.find(thread_key());
    if (it == g_pending.end()) return;
    Pending &p = it->second;
    while ((int)p.groups.size() > n) {
        for (const Copy &c : p.groups.front()) {
#ifdef PAW_EMU_RACE
            __tsan_read16(const_cast<void *>(c.src));  // by the thread, at the wait that lands it
            __tsan_write16(c.dst);
#endif
            memcpy(c.dst, c.src, 16);
        }
        Untracked u;
        p.groups.pop_front();
    }
}

// A block's shared memory ends with it, and copies into it that were never waited for with it.
void cp_async_end_block() {
    Untracked u;
    g_pending.clear();
}

}  // namespace emu
