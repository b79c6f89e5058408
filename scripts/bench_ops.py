#!/usr/bin/env python3
"""Op benchmark: the engine's ops (`wuerstchen bench ops --json`) against PyTorch's at the model's
real shapes, on the same machine in the same run. Prints a Markdown table for BENCHMARKS.md.

Run by hand in a virtualenv that has torch (never in CI):
    swift build -c release --product wuerstchen
    /path/to/venv/bin/python scripts/bench_ops.py [--threads 2] [--binary .build/release/wuerstchen]
        [--filter gelu] [--rounds 5]   # only some cases; alternate the two engines 5 times (shared machines)

Each case has the same name, shapes and work count on both sides; the table gives milliseconds
(median of the repeats), GFLOP/s or GB/s, and the speed ratio torch_ms / ours_ms (> 1: we are faster).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def cases():
    """(name, work, unit, fn) with tensors in torch's own preferred layout (NCHW for convs)."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    out = []

    def linear(name, m, k, n):
        x, w, b = r(m, k), r(n, k), r(n)
        out.append((name, 2 * m * k * n, "GFLOP/s", lambda: F.linear(x, w, b)))

    def sgemm(name, m, k, n):
        a, b = r(m, k), r(k, n)
        out.append((name, 2 * m * k * n, "GFLOP/s", lambda: torch.mm(a, b)))

    sgemm("sgemm 1152x1536x6144", 1152, 1536, 6144)
    linear("linear prior 1152x1536->6144", 1152, 1536, 6144)
    linear("linear prior 1152x6144->1536", 1152, 6144, 1536)
    linear("linear decoder 16384x320->1280", 16384, 320, 1280)
    linear("linear decoder 16384x1280->320", 16384, 1280, 320)

    def linear_bf16(name, m, k, n):
        # What diffusers runs with torch_dtype=torch.bfloat16 (bfloat16 in and out).
        x, w, b = r(m, k).bfloat16(), r(n, k).bfloat16(), r(n).bfloat16()
        out.append((name, 2 * m * k * n, "GFLOP/s", lambda: F.linear(x, w, b)))

    linear_bf16("linear bf16 prior 288x1536->6144", 288, 1536, 6144)
    linear_bf16("linear bf16 prior 1152x1536->6144", 1152, 1536, 6144)
    linear_bf16("linear bf16 prior 1152x6144->1536", 1152, 6144, 1536)
    linear_bf16("linear bf16 decoder 16384x320->1280", 16384, 320, 1280)
    linear_bf16("linear bf16 decoder 16384x1280->320", 16384, 1280, 320)

    def conv(name, b, c, h, w, co, k, s, p):
        x, wt, bias = r(b, c, h, w), r(co, c, k, k), r(co)
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        out.append((name, 2 * b * ho * wo * co * c * k * k, "GFLOP/s", lambda: F.conv2d(x, wt, bias, s, p)))

    conv("conv1x1 decoder [1,128,128,16]->320", 1, 16, 128, 128, 320, 1, 1, 0)
    conv("conv2x2s2 decoder [1,128,128,320]->640", 1, 320, 128, 128, 640, 2, 2, 0)
    conv("conv4x4s2p1 vqgan [1,512,512,192]->384", 1, 192, 512, 512, 384, 4, 2, 1)

    def convt(name, b, c, h, w, co, k, s, p):
        x, wt, bias = r(b, c, h, w), r(c, co, k, k), r(co)
        out.append((name, 2 * b * h * w * c * co * k * k, "GFLOP/s", lambda: F.conv_transpose2d(x, wt, bias, s, p)))

    convt("convT2x2s2 decoder [1,64,64,640]->320", 1, 640, 64, 64, 320, 2, 2, 0)
    convt("convT4x4s2p1 vqgan [1,256,256,384]->192", 1, 384, 256, 256, 192, 4, 2, 1)

    def dw(name, b, c, h, w, mode):
        x, wt, bias = r(b, c, h, w), r(c, 1, 3, 3), r(c)
        if mode == "zeros":
            fn = lambda: F.conv2d(x, wt, bias, 1, 1, 1, c)
        else:
            fn = lambda: F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), wt, bias, 1, 0, 1, c)
        out.append((name, 2 * 4 * b * c * h * w, "GB/s", fn))

    dw("depthwise3x3 prior [2,24,24,1536]", 2, 1536, 24, 24, "zeros")
    dw("depthwise3x3 decoder [1,128,128,320]", 1, 320, 128, 128, "zeros")
    dw("depthwise3x3 replicate vqgan [1,256,256,384]", 1, 384, 256, 256, "replicate")

    def unary(name, shape, fn):
        x = r(*shape)
        n = x.numel()
        out.append((name, 2 * 4 * n, "GB/s", lambda: fn(x)))

    unary("gelu prior [2,24,24,6144]", (2, 24, 24, 6144), F.gelu)
    unary("gelu decoder [1,128,128,1280]", (1, 128, 128, 1280), F.gelu)
    unary("silu [1,128,128,1280]", (1, 128, 128, 1280), F.silu)
    unary("layernorm prior [2,24,24,1536]", (2, 24, 24, 1536), lambda x: F.layer_norm(x, (1536,), eps=1e-6))
    unary("layernorm decoder [1,128,128,320]", (1, 128, 128, 320), lambda x: F.layer_norm(x, (320,), eps=1e-6))

    def grn(x, gamma, beta):
        agg = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        stand = agg / (agg.mean(dim=-1, keepdim=True) + 1e-6)
        return gamma * (x * stand) + beta + x

    for name, shape in [("grn prior [2,24,24,6144]", (2, 24, 24, 6144)), ("grn decoder [1,128,128,1280]", (1, 128, 128, 1280))]:
        x, gm, bt = r(*shape), r(1, 1, 1, shape[-1]), r(1, 1, 1, shape[-1])
        out.append((name, 2 * 4 * x.numel(), "GB/s", lambda x=x, gm=gm, bt=bt: grn(x, gm, bt)))

    x, y = r(1, 128, 128, 1280), r(1, 128, 128, 1280)
    out.append(("add [1,128,128,1280]", 3 * 4 * x.numel(), "GB/s", lambda: x + y))
    s = r(2, 24, 653, 576)
    out.append(("softmax [2*24*576,653]", 2 * 4 * s.numel(), "GB/s", lambda: torch.softmax(s, -1)))

    def attn(name, b, lq, lk, e, h):
        q, k, v = r(b, h, lq, e // h), r(b, h, lk, e // h), r(b, h, lk, e // h)
        out.append((name, 4 * b * lq * lk * e, "GFLOP/s", lambda: F.scaled_dot_product_attention(q, k, v)))

    attn("attention prior B2 576x653 E1536 H24", 2, 576, 653, 1536, 24)
    attn("attention decoder B1 1024x1101 E640 H10", 1, 1024, 1101, 640, 10)
    attn("attention decoder B1 4096x4173 E640 H10", 1, 4096, 4173, 640, 10)

    e = r(2, 16, 24, 24)
    out.append(("bicubic-aa 24->128 [2,24,24,16]", 4 * 2 * 16 * 128 * 128, "GB/s",
                lambda: F.interpolate(e, size=(128, 128), mode="bicubic", antialias=True, align_corners=True)))
    out.append(("bicubic-aa 24->16 [2,24,24,16]", 4 * 2 * 16 * 16 * 16, "GB/s",
                lambda: F.interpolate(e, size=(16, 16), mode="bicubic", antialias=True, align_corners=True)))

    gen = torch.Generator()
    out.append(("randn [1,4,256,256]", 4 * 4 * 256 * 256, "GB/s",
                lambda: (gen.manual_seed(0), torch.randn(1, 4, 256, 256, generator=gen))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--binary", default=".build/release/wuerstchen")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--filter", help="only cases whose name contains this text (both engines)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate ours and torch this many times; the table gives the median of the rounds' "
                         "medians and, with more than one round, the range of the per-round ratios")
    ap.add_argument("--haswell", action="store_true",
                    help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for our run (by default both are unset so OpenBLAS "
                         "picks its kernels for this CPU; the table's first line says which ran)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    env = dict(os.environ)
    if not args.haswell:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    command = [args.binary, "bench", "ops", "--json", "--threads", str(args.threads), "--repeats", str(args.repeats)]
    if args.filter:
        command += ["--filter", args.filter]
    torch_cases = [c for c in cases() if not args.filter or args.filter in c[0]]

    ours_rounds, torch_rounds = {}, {}  # name -> [seconds per round]
    for _ in range(max(args.rounds, 1)):
        ours = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)
        for c in ours["cases"]:
            ours_rounds.setdefault(c["name"], []).append(c)
        for name, work, unit, fn in torch_cases:
            torch_rounds.setdefault(name, []).append(timed(fn, args.repeats))

    median = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"OpenBLAS core: {ours['blas_core']}, GELU kernel: {ours.get('gelu_kernel', '?')}, threads {args.threads}; "
          f"torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {torch.backends.cpu.get_cpu_capability()}; rounds {args.rounds}")
    print()
    ranges = args.rounds > 1
    print("| op (shapes NHWC) | ours ms | ours rate | torch ms | torch rate | torch/ours |" + (" per round |" if ranges else ""))
    print("| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if ranges else ""))
    for name, work, unit, fn in torch_cases:
        t = median(torch_rounds[name])
        rate = lambda s: work / s / 1e9
        if name not in ours_rounds:
            print(f"| {name} | - | - | {t*1e3:.2f} | {rate(t):.1f} {unit} | - |" + (" - |" if ranges else ""))
            continue
        mine = [c["seconds"] for c in ours_rounds[name]]
        m = median(mine)
        extra = ""
        if ranges:
            ratios = [tt / mm for tt, mm in zip(torch_rounds[name], mine)]
            extra = f" {min(ratios):.2f}-{max(ratios):.2f} |"
        print(f"| {name} | {m*1e3:.2f} | {rate(m):.1f} {unit} | {t*1e3:.2f} | {rate(t):.1f} {unit} | {t/m:.2f} |" + extra)
    missing = set(ours_rounds) - {c[0] for c in torch_cases}
    for name in sorted(missing):
        runs = ours_rounds[name]
        m = median([c["seconds"] for c in runs])
        unit = runs[0].get("unit", "")
        rate = runs[0]["rate"] * runs[0]["seconds"] / m
        print(f"| {name} | {m*1e3:.2f} | {rate:.1f} {unit} | - | - | - |" + (" - |" if ranges else ""))


if __name__ == "__main__":
    sys.exit(main())
