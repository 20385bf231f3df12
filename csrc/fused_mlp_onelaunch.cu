// One-launch SwiGLU MLP shard for small M (M <= 32): both GEMMs and the SwiGLU in ONE
// cooperative launch, fp32 accumulation, bf16 or fp16 in and out.
//
//   out[M, H] = (silu(x w13[0:I]^T) * (x w13[I:2I]^T)) w2^T
//   x [M, H], w13 [2I, H] (gate rows 0:I, up rows I:2I), w2 [H, I], I = this rank's shard.
//
// At decode sizes the work is a weight read (1-38 MB) and the cost is latency: two launches
// and the gap between them.  One persistent grid (occupancy-sized, cooperative launch, so all
// blocks are co-resident) runs:
//
// * phase 1: unit i (one intermediate index: gate row i and up row I + i of w13) goes to a
//   group of `ksplit` warps of one block.  Split-K over H: each warp takes a contiguous chunk
//   of H, each lane 16-byte vectors (8 elements) of it, strided by 32; all weight loads of a
//   batch are issued before any FMA.  Partial sums are reduced on chip: warp shuffles, then
//   the group's warps through shared memory.  h[m, i] = silu(g) * u is rounded to the input
//   dtype (as torch and the Triton v2 kernel round h) and stored to a small workspace.
// * grid.sync(): the grid-wide barrier (cooperative_groups; it fences memory, so every h
//   store is visible after it).
// * phase 2: every block copies h [M, I] into shared memory (L2 reads, never the
//   non-coherent path: h was written in this launch), then each output column n (row n of
//   w2) goes to `lanes2` lanes of a warp, which split I in 16-byte vectors and reduce with
//   shuffles; out[m, n] is rounded to the output dtype.
//
// Units are spread over blocks first (unit u runs on block u % grid), so small shapes use
// every SM.  Deterministic: a fixed reduction order, no atomics.
// Requirements (checked by the caller): contiguous tensors, 16-byte aligned base pointers,
// H % 8 == 0, I % 8 == 0, 1 <= M <= 32.

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "fused_mlp_onelaunch.h"

namespace cg = cooperative_groups;

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kVec = 8;  // elements per 16-byte vector
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ void to_float8(const uint4& v, float* f, const __nv_bfloat16*) {
  const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 t = __bfloat1622float2(p[j]);
    f[2 * j] = t.x;
    f[2 * j + 1] = t.y;
  }
}

__device__ __forceinline__ void to_float8(const uint4& v, float* f, const __half*) {
  const __half2* p = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 t = __half22float2(p[j]);
    f[2 * j] = t.x;
    f[2 * j + 1] = t.y;
  }
}

__device__ __forceinline__ __nv_bfloat16 from_float(float v, const __nv_bfloat16*) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ __half from_float(float v, const __half*) { return __float2half_rn(v); }

__device__ __forceinline__ float dot8(const float* a, const float* b) {
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) s = fmaf(a[j], b[j], s);
  return s;
}

struct Params {
  const void* x;
  const void* w13;
  const void* w2;
  void* out;
  void* h;
  int M, H, I;
  int ksplit;  // warps per phase-1 unit: 1, 2, 4 or 8
  int lanes2;  // lanes per phase-2 row: a power of two <= 32
};

template <typename T, int MT>
__global__ void __launch_bounds__(kThreads) fused_mlp_onelaunch_kernel(const Params p) {
  // MT >= M: a compile-time bound, so the accumulators stay in registers.
  constexpr int UNROLL = MT >= 16 ? 2 : 4;  // 16-byte weight loads in flight per lane per row
  extern __shared__ __align__(16) unsigned char smem[];
  const T* tag = nullptr;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int M = p.M, H = p.H, I = p.I;
  const uint4* x = reinterpret_cast<const uint4*>(p.x);
  const uint4* w13 = reinterpret_cast<const uint4*>(p.w13);
  const uint4* w2 = reinterpret_cast<const uint4*>(p.w2);
  T* out = reinterpret_cast<T*>(p.out);
  T* h = reinterpret_cast<T*>(p.h);

  // ---- phase 1: h[m, i] = silu(x[m] . w13[i]) * (x[m] . w13[I + i]) ----------------------
  {
    float* red = reinterpret_cast<float*>(smem);  // [kWarps][2 * MT]
    const int ksplit = p.ksplit;
    const int groups = kWarps / ksplit;
    const int group = warp / ksplit, sub = warp % ksplit;
    const int hv = H / kVec;  // vectors per row
    const int chunk = (hv + ksplit - 1) / ksplit;
    const int v_lo = sub * chunk;
    const int v_hi = min(hv, v_lo + chunk);
    const int per_round = gridDim.x * groups;
    for (int base = 0; base < I; base += per_round) {  // uniform over the block
      const int i = base + group * gridDim.x + blockIdx.x;
      float g[MT], u[MT];
#pragma unroll
      for (int m = 0; m < MT; ++m) g[m] = u[m] = 0.f;
      if (i < I) {
        const uint4* wg = w13 + static_cast<size_t>(i) * hv;
        const uint4* wu = w13 + static_cast<size_t>(I + i) * hv;
        for (int v0 = v_lo + lane; v0 < v_hi; v0 += UNROLL * 32) {
          uint4 gv[UNROLL], uv[UNROLL];
#pragma unroll
          for (int j = 0; j < UNROLL; ++j) {  // all weight loads first
            const int v = v0 + j * 32;
            if (v < v_hi) {
              gv[j] = __ldg(wg + v);
              uv[j] = __ldg(wu + v);
            } else {
              gv[j] = uv[j] = make_uint4(0, 0, 0, 0);
            }
          }
#pragma unroll
          for (int j = 0; j < UNROLL; ++j) {
            const int v = v0 + j * 32;
            if (v < v_hi) {
              float fg[kVec], fu[kVec];
              to_float8(gv[j], fg, tag);
              to_float8(uv[j], fu, tag);
#pragma unroll
              for (int m = 0; m < MT; ++m) {
                if (m < M) {
                  float fx[kVec];
                  to_float8(__ldg(x + static_cast<size_t>(m) * hv + v), fx, tag);
                  g[m] += dot8(fx, fg);
                  u[m] += dot8(fx, fu);
                }
              }
            }
          }
        }
      }
#pragma unroll
      for (int m = 0; m < MT; ++m) {  // reduce over the lanes
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
          g[m] += __shfl_xor_sync(kFull, g[m], off);
          u[m] += __shfl_xor_sync(kFull, u[m], off);
        }
      }
      if (lane == 0) {
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          red[warp * 2 * MT + m] = g[m];
          red[warp * 2 * MT + MT + m] = u[m];
        }
      }
      __syncthreads();
      if (sub == 0 && i < I && lane < M) {  // reduce over the group's warps, fixed order
        float gs = 0.f, us = 0.f;
        for (int s = 0; s < ksplit; ++s) {
          gs += red[(group * ksplit + s) * 2 * MT + lane];
          us += red[(group * ksplit + s) * 2 * MT + MT + lane];
        }
        const float silu = gs / (1.f + __expf(-gs));
        h[static_cast<size_t>(lane) * I + i] = from_float(silu * us, tag);
      }
      __syncthreads();  // red is reused by the next round
    }
  }

  cg::this_grid().sync();  // every h[m, i] of this launch is written and visible
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Every block is resident and past phase 1: a kernel launched after this one with
  // programmatic dependent launch (sglang_ext/kernels/pdl.py) may start now; it waits
  // (griddepcontrol.wait) for this grid to complete before it touches memory.  A no-op for
  // a plain launch after it.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif

  // ---- phase 2: out[m, n] = h[m] . w2[n] --------------------------------------------------
  {
    const int iv = I / kVec;  // vectors per row of h and of w2
    uint4* hs = reinterpret_cast<uint4*>(smem);  // [M][iv]
    const uint4* hg = reinterpret_cast<const uint4*>(h);
    for (int idx = threadIdx.x; idx < M * iv; idx += kThreads) hs[idx] = __ldcg(hg + idx);
    __syncthreads();
    const int lanes2 = p.lanes2;
    const int rows_per_warp = 32 / lanes2;
    const int seg = lane / lanes2, sl = lane % lanes2;
    const int per_round = gridDim.x * kWarps * rows_per_warp;
    for (int base = 0; base < H; base += per_round) {  // uniform over the block
      const int n = base + (warp * rows_per_warp + seg) * gridDim.x + blockIdx.x;
      float acc[MT];
#pragma unroll
      for (int m = 0; m < MT; ++m) acc[m] = 0.f;
      if (n < H) {
        const uint4* wrow = w2 + static_cast<size_t>(n) * iv;
        for (int v0 = sl; v0 < iv; v0 += UNROLL * lanes2) {
          uint4 wv[UNROLL];
#pragma unroll
          for (int j = 0; j < UNROLL; ++j) {
            const int v = v0 + j * lanes2;
            wv[j] = v < iv ? __ldg(wrow + v) : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
          for (int j = 0; j < UNROLL; ++j) {
            const int v = v0 + j * lanes2;
            if (v < iv) {
              float fw[kVec];
              to_float8(wv[j], fw, tag);
#pragma unroll
              for (int m = 0; m < MT; ++m) {
                if (m < M) {
                  float fh[kVec];
                  to_float8(hs[m * iv + v], fh, tag);
                  acc[m] += dot8(fh, fw);
                }
              }
            }
          }
        }
      }
#pragma unroll
      for (int m = 0; m < MT; ++m) {  // reduce within each segment of lanes2 lanes
        for (int off = lanes2 / 2; off > 0; off >>= 1) {
          acc[m] += __shfl_xor_sync(kFull, acc[m], off);
        }
      }
      if (sl == 0 && n < H) {
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (m < M) out[static_cast<size_t>(m) * H + n] = from_float(acc[m], tag);
        }
      }
    }
  }
}

int next_pow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

struct Plan {
  int grid = 0, ksplit = 1, lanes2 = 1;
  size_t smem = 0;
};

template <typename T, int MT>
cudaError_t plan_and_launch(Params prm, int blocks_per_sm, int ksplit_max, cudaStream_t stream,
                            bool launch, Plan* out_plan) {
  auto kernel = fused_mlp_onelaunch_kernel<T, MT>;
  int dev = 0, num_sms = 0, smem_optin = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, dev);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err != cudaSuccess) return err;
  const size_t red_bytes = static_cast<size_t>(kWarps) * 2 * MT * sizeof(float);
  const size_t h_bytes = static_cast<size_t>(prm.M) * prm.I * sizeof(T);
  const size_t smem = red_bytes > h_bytes ? red_bytes : h_bytes;
  if (smem > static_cast<size_t>(smem_optin)) return cudaErrorInvalidValue;
  // Opt in to the device's whole shared memory once per (instantiation, device): after the
  // first (eager) call nothing but the launch is issued, so CUDA-graph capture sees one node.
  static bool opted_in[64] = {};
  if (smem > 48 * 1024 && !(dev < 64 && opted_in[dev])) {
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_optin);
    if (err != cudaSuccess) return err;
    if (dev < 64) opted_in[dev] = true;
  }
  int occ = 0;
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, kThreads, smem);
  if (err != cudaSuccess) return err;
  if (occ < 1) return cudaErrorInvalidConfiguration;
  const int bps = blocks_per_sm > 0 && blocks_per_sm < occ ? blocks_per_sm : occ;
  Plan plan;
  plan.grid = bps * num_sms;
  plan.smem = smem;
  // ksplit: enough warps per row pair to occupy the grid's warps, <= 8 (one block), and at
  // least one vector per lane in each warp's chunk of H.
  const int total_warps = plan.grid * kWarps;
  const int cap = ksplit_max > 0 && ksplit_max < 8 ? ksplit_max : 8;
  while (plan.ksplit * 2 <= cap && plan.ksplit * 2 * prm.I <= total_warps &&
         (prm.H / kVec) / (plan.ksplit * 2) >= 32) {
    plan.ksplit *= 2;
  }
  const int iv = prm.I / kVec;
  plan.lanes2 = iv >= 32 ? 32 : next_pow2(iv);
  if (out_plan != nullptr) *out_plan = plan;
  if (!launch) return cudaSuccess;
  prm.ksplit = plan.ksplit;
  prm.lanes2 = plan.lanes2;
  void* args[] = {&prm};
  return cudaLaunchCooperativeKernel(reinterpret_cast<void*>(kernel), dim3(plan.grid),
                                     dim3(kThreads), args, smem, stream);
}

template <typename T>
cudaError_t dispatch_m(const Params& prm, int blocks_per_sm, int ksplit_max, cudaStream_t stream,
                       bool launch, Plan* plan) {
  switch (next_pow2(prm.M)) {
    case 1: return plan_and_launch<T, 1>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
    case 2: return plan_and_launch<T, 2>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
    case 4: return plan_and_launch<T, 4>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
    case 8: return plan_and_launch<T, 8>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
    case 16: return plan_and_launch<T, 16>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
    case 32: return plan_and_launch<T, 32>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t run(Params prm, int dtype, int blocks_per_sm, int ksplit_max, cudaStream_t stream,
                bool launch, Plan* plan) {
  if (prm.M < 1 || prm.M > SGLANG_EXT_ONELAUNCH_MAX_M || prm.H < kVec || prm.I < kVec ||
      prm.H % kVec != 0 || prm.I % kVec != 0) {
    return cudaErrorInvalidValue;
  }
  if (dtype == 0) return dispatch_m<__nv_bfloat16>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
  if (dtype == 1) return dispatch_m<__half>(prm, blocks_per_sm, ksplit_max, stream, launch, plan);
  return cudaErrorInvalidValue;
}

}  // namespace

extern "C" int sglang_ext_fused_mlp_onelaunch(const void* x, const void* w13, const void* w2,
                                              void* out, void* h, int M, int H, int I, int dtype,
                                              int blocks_per_sm, int ksplit_max, void* stream) {
  const uintptr_t mis = reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w13) |
                        reinterpret_cast<uintptr_t>(w2) | reinterpret_cast<uintptr_t>(h);
  if (mis % 16 != 0) return cudaErrorMisalignedAddress;
  Params prm{x, w13, w2, out, h, M, H, I, 1, 1};
  return run(prm, dtype, blocks_per_sm, ksplit_max, static_cast<cudaStream_t>(stream), true,
             nullptr);
}

extern "C" int sglang_ext_fused_mlp_onelaunch_plan(int M, int H, int I, int dtype,
                                                   int blocks_per_sm, int ksplit_max, int* out4) {
  Params prm{nullptr, nullptr, nullptr, nullptr, nullptr, M, H, I, 1, 1};
  Plan plan;
  const cudaError_t err = run(prm, dtype, blocks_per_sm, ksplit_max, nullptr, false, &plan);
  if (err == cudaSuccess) {
    out4[0] = plan.grid;
    out4[1] = plan.ksplit;
    out4[2] = plan.lanes2;
    out4[3] = static_cast<int>(plan.smem);
  }
  return err;
}

extern "C" const char* sglang_ext_cuda_error_string(int err) {
  return cudaGetErrorString(static_cast<cudaError_t>(err));
}
