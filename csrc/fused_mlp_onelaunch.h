// One-launch SwiGLU MLP shard for small M (see fused_mlp_onelaunch.cu).  C ABI, no torch:
// the Python side (sglang_ext/kernels/cuda_onelaunch.py) loads the built library with ctypes.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Largest token count the kernel takes (one register accumulator per token per thread).
#define SGLANG_EXT_ONELAUNCH_MAX_M 32

// out[M, H] = (silu(x w13[0:I]^T) * (x w13[I:2I]^T)) w2^T, one cooperative launch.
// x [M, H], w13 [2I, H], w2 [H, I], out [M, H]: contiguous, 16-byte aligned, H % 8 == 0,
// I % 8 == 0, 1 <= M <= 32.  h: workspace of M * I elements (same dtype), 16-byte aligned.
// dtype: 0 = bfloat16, 1 = float16.  blocks_per_sm: cap on resident blocks per SM (the grid
// is min(occupancy, blocks_per_sm) * SMs).  ksplit_max: cap on the warps sharing one
// phase-1 row pair (0 = no cap beyond 8).  stream: a cudaStream_t.
// Returns a cudaError_t (0 = success).
int sglang_ext_fused_mlp_onelaunch(const void* x, const void* w13, const void* w2, void* out,
                                   void* h, int M, int H, int I, int dtype, int blocks_per_sm,
                                   int ksplit_max, void* stream);

// The launch shape the call above would use: writes grid blocks, ksplit, lanes per phase-2
// row and dynamic shared memory bytes into out4.  Returns a cudaError_t.
int sglang_ext_fused_mlp_onelaunch_plan(int M, int H, int I, int dtype, int blocks_per_sm,
                                        int ksplit_max, int* out4);

// cudaGetErrorString.
const char* sglang_ext_cuda_error_string(int err);

#ifdef __cplusplus
}
#endif
