// Kernels with and without a race, one case per run, for the race check of the CPU emulation
// (`make test-race`, tests/emu/race_selftest.sh): each racy case must be reported and each
// correctly synchronised twin must not, so that a clean test-race run means something.
// Built only for the emulation: `emu_selftest CASE`.
#include <stdio.h>
#include <string.h>

#include "kernels/cuda_common.cuh"

static const int N = 64;  // threads per block

// Each thread writes its slot and reads its neighbour's, with or without a barrier between.
__global__ void neighbour_kernel(float *out, int barrier) {
    __shared__ float s[N];
    int t = threadIdx.x;
    s[t] = (float)t;
    if (barrier) __syncthreads();
    out[blockIdx.x * N + t] = s[(t + 1) % N];
}

// Block b writes its N elements starting at b * stride: stride < N overlaps the next block's.
__global__ void blocks_kernel(float *out, int stride) { out[blockIdx.x * stride + threadIdx.x] = 1.0f; }

__global__ void atomic_kernel(float *sum) { atomicAdd(sum, 1.0f); }

// Lane 0 writes, lane 5 reads, ordered by __syncwarp or only by a shuffle (which orders nothing).
__global__ void warp_kernel(float *out, int syncwarp) {
    __shared__ float s[32];
    int lane = threadIdx.x;
    if (lane == 0) s[0] = 42.0f;
    if (syncwarp)
        __syncwarp();
    else
        (void)__shfl_sync(0xffffffffu, lane, 0);
    if (lane == 5) out[0] = s[0];
}

// Each block writes its slot and counts itself; the last block to arrive sums every slot. With
// `fence` = 0 the writer's fence is missing, so nothing orders the slots before the last one's reads.
__global__ void last_block_kernel(float *slots, int *count, float *out, int fence) {
    __shared__ int last;
    if (threadIdx.x == 0) {
        slots[blockIdx.x] = (float)blockIdx.x;
        if (fence) __threadfence();
        last = atomicAdd(count, 1) == (int)gridDim.x - 1;
        __threadfence();
    }
    __syncthreads();
    if (last && threadIdx.x == 0) {
        float s = 0;
        for (unsigned b = 0; b < gridDim.x; b++) s += slots[b];
        out[0] = s;
    }
}

__global__ void write_kernel(float *buf) { buf[threadIdx.x] = (float)threadIdx.x; }

// Launched programmatically after write_kernel: reads its output before or after the wait.
__global__ void pdl_read_kernel(const float *buf, float *out, int read_first) {
    float v = 0;
    if (read_first) v = buf[threadIdx.x];
    pdl_enter();
    if (!read_first) v = buf[threadIdx.x];
    out[threadIdx.x] = v;
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    if (paw_cuda_init() != 0) return 2;
    float *a, *b, h[4 * N];
    CUDA_CHECK(cudaMalloc(&a, sizeof h));
    CUDA_CHECK(cudaMalloc(&b, sizeof h));
    cudaStream_t st = paw_cuda_stream();
    if (!strcmp(c, "smem-no-barrier") || !strcmp(c, "smem-barrier"))
        neighbour_kernel<<<2, N, 0, st>>>(a, !strcmp(c, "smem-barrier"));
    else if (!strcmp(c, "blocks-overlap") || !strcmp(c, "blocks-disjoint"))
        blocks_kernel<<<3, N, 0, st>>>(a, !strcmp(c, "blocks-overlap") ? N - 1 : N);
    else if (!strcmp(c, "atomics"))
        atomic_kernel<<<4, N, 0, st>>>(a);
    else if (!strcmp(c, "last-block-fence") || !strcmp(c, "last-block-no-fence")) {
        CUDA_CHECK(cudaMemset(b, 0, sizeof h));
        last_block_kernel<<<4, N, 0, st>>>(a, (int *)b, a + N, !strcmp(c, "last-block-fence"));
    } else if (!strcmp(c, "warp-shuffle") || !strcmp(c, "warp-syncwarp"))
        warp_kernel<<<1, 32, 0, st>>>(a, !strcmp(c, "warp-syncwarp"));
    else if (!strcmp(c, "kernel-order")) {
        write_kernel<<<1, N, 0, st>>>(a);
        pdl_read_kernel<<<1, N, 0, st>>>(a, b, 1);  // an ordinary launch: ordered
    } else if (!strcmp(c, "pdl-read-before-wait") || !strcmp(c, "pdl-read-after-wait")) {
        if (!paw_cuda_set_pdl(1)) return fprintf(stderr, "programmatic launch not available\n"), 2;
        paw_launch(write_kernel, dim3(1), dim3(N), 0, a);
        paw_launch(pdl_read_kernel, dim3(1), dim3(N), 0, (const float *)a, b, !strcmp(c, "pdl-read-before-wait"));
    } else
        return fprintf(stderr, "emu_selftest: unknown case '%s'\n", c), 2;
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(h, a, sizeof h, cudaMemcpyDeviceToHost));  // the host reads after the grids
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    return 0;
}
