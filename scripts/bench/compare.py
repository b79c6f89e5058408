#!/usr/bin/env python3
"""End-to-end benchmark: this engine (`wuerstchen bench --json`) against diffusers on CPU, same pipeline
folders, same thread count, same settings (the model card's: prior default schedule, guidance 4; decoder
12 steps, guidance 0; seed 0), each in its own process so peak RSS is its own. Run by hand (never in CI):

    /path/to/venv/bin/python scripts/bench/compare.py --prior DIR --decoder DIR [--sizes 512 1024]
        [--threads 2] [--precisions fp32 bf16] [--dtypes float32 bfloat16] [--images DIR]
        [--binary .build/release/wuerstchen]

Prints one JSON line per run and a Markdown table for BENCHMARKS.md. With --images every run writes its
image there (ours-<precision>-<px>.png, diffusers-<dtype>-<px>.png) and a second table gives how far apart
the images are (in 8-bit levels) against each engine's float32 image and between the engines.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def load_pipelines(prior, decoder, dtype):
    """diffusers' two pipelines from pipeline folders, component by component. The published
    model_index.json files name the library "wuerstchen" and diffusers' own save_pretrained writes "diffusers";
    diffusers 0.42 (which moved the models to pipelines/deprecated) resolves neither, so the components are
    loaded from their subfolders and handed to the pipelines."""
    import torch
    from diffusers import DDPMWuerstchenScheduler, WuerstchenDecoderPipeline, WuerstchenPriorPipeline
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    from transformers import CLIPTextModel, CLIPTokenizer

    kw = dict(torch_dtype=dtype)
    if any(f.endswith(".fp16.safetensors") for f in os.listdir(os.path.join(prior, "prior"))):
        kw["variant"] = "fp16"

    def common(folder):
        return dict(tokenizer=CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer")),
                    text_encoder=CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), **kw),
                    scheduler=DDPMWuerstchenScheduler.from_pretrained(os.path.join(folder, "scheduler")))

    prior_pipe = WuerstchenPriorPipeline(prior=WuerstchenPrior.from_pretrained(os.path.join(prior, "prior"), **kw), **common(prior))
    decoder_pipe = WuerstchenDecoderPipeline(decoder=WuerstchenDiffNeXt.from_pretrained(os.path.join(decoder, "decoder"), **kw),
                                             vqgan=PaellaVQModel.from_pretrained(os.path.join(decoder, "vqgan"), **kw),
                                             **common(decoder))
    return prior_pipe, decoder_pipe


def diffusers_run(prior, decoder, size, threads, dtype_name, image_path=None):
    """Runs in a child process: loads both pipelines with diffusers and times one generation."""
    import resource

    import torch
    from diffusers import WuerstchenDecoderPipeline, WuerstchenPriorPipeline
    from diffusers.pipelines.deprecated.wuerstchen.pipeline_wuerstchen_prior import DEFAULT_STAGE_C_TIMESTEPS

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    t0 = time.perf_counter()
    prior_pipe, decoder_pipe = load_pipelines(prior, decoder, dtype)
    load = time.perf_counter() - t0

    timings = {"text": [], "vq": 0.0}

    def timed_module(module, key):
        orig = module.forward

        def fwd(*a, **k):
            s = time.perf_counter()
            r = orig(*a, **k)
            timings[key].append(time.perf_counter() - s)
            return r
        module.forward = fwd

    timed_module(prior_pipe.text_encoder, "text")
    timed_module(decoder_pipe.text_encoder, "text")
    orig_decode = decoder_pipe.vqgan.decode

    def decode(*a, **k):
        s = time.perf_counter()
        r = orig_decode(*a, **k)
        timings["vq"] += time.perf_counter() - s
        return r
    decoder_pipe.vqgan.decode = decode

    steps = {"prior": [], "decoder": []}

    def stepper(name):
        last = [None]

        def cb(pipe, i, t, kwargs):
            now = time.perf_counter()
            if last[0] is not None:
                steps[name].append(now - last[0])
            last[0] = now
            return kwargs
        return cb, last

    prompt = "Anthropomorphic cat dressed as a fire fighter"
    g = torch.Generator("cpu").manual_seed(0)
    with torch.no_grad():
        t0 = time.perf_counter()
        pcb, plast = stepper("prior")
        plast[0] = None
        emb = prior_pipe(prompt=prompt, height=size, width=size, timesteps=DEFAULT_STAGE_C_TIMESTEPS, guidance_scale=4.0,
                         generator=g, callback_on_step_end=pcb).image_embeddings
        t_prior = time.perf_counter() - t0
        dcb, dlast = stepper("decoder")
        t1 = time.perf_counter()
        images = decoder_pipe(image_embeddings=emb, prompt=prompt, guidance_scale=0.0, num_inference_steps=12, generator=g,
                              output_type="np", callback_on_step_end=dcb).images
        t_decoder = time.perf_counter() - t1
        total = time.perf_counter() - t0
    if image_path:
        from PIL import Image
        Image.fromarray((images[0].clip(0, 1) * 255).round().astype("uint8")).save(image_path)
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else 0
    return {"engine": f"diffusers-{dtype_name}", "width": size, "height": size, "threads": threads, "load_s": load,
            "total_s": total, "prior_text_s": timings["text"][0] if timings["text"] else 0,
            "prior_step_s": med(steps["prior"]), "prior_pipeline_s": t_prior, "decoder_step_s": med(steps["decoder"]),
            "decoder_pipeline_s": t_decoder, "vqgan_s": timings["vq"],
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtypes", nargs="+", default=["float32"], help="diffusers torch dtypes")
    ap.add_argument("--precisions", nargs="+", default=["fp32"], help="our --precision values")
    ap.add_argument("--images", help="folder to write every run's image into, and compare them")
    ap.add_argument("--binary", default=".build/release/wuerstchen")
    ap.add_argument("--haswell", action="store_true",
                    help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE from the environment (by default they are unset for "
                         "our run, so OpenBLAS picks its kernels for this CPU; the JSON says which ran)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        size, threads, dtype, image = args.child
        print(json.dumps(diffusers_run(args.prior, args.decoder, int(size), int(threads), dtype, image or None)))
        return
    if args.images:
        os.makedirs(args.images, exist_ok=True)
    image = lambda name: os.path.join(args.images, name) if args.images else ""
    rows = []
    for size in args.sizes:
        env = dict(os.environ)
        if not args.haswell:
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
        for precision in args.precisions:
            cmd = [args.binary, "bench", "--prior", args.prior, "--decoder", args.decoder, "--width", str(size),
                   "--height", str(size), "--threads", str(args.threads), "--precision", precision, "--json"]
            if args.images:
                cmd += ["--output", image(f"ours-{precision}-{size}.png")]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            ours = json.loads(out.strip().splitlines()[-1])
            ours["engine"] = f"wuerstchen-swift-{ours.get('precision', precision)}"
            ours["load_avg"] = os.getloadavg()[0]
            print(json.dumps(ours), flush=True)
            rows.append(ours)
        for dtype in args.dtypes:
            out = subprocess.run([sys.executable, __file__, "--prior", args.prior, "--decoder", args.decoder,
                                  "--child", str(size), str(args.threads), dtype, image(f"diffusers-{dtype}-{size}.png")],
                                 check=True, capture_output=True, text=True).stdout
            theirs = json.loads(out.strip().splitlines()[-1])
            theirs["load_avg"] = os.getloadavg()[0]
            print(json.dumps(theirs), flush=True)
            rows.append(theirs)
    print()
    print("| engine | BLAS kernels | px | load s | text (prior) s | prior step s | decoder step s | VQ decode s | total s | peak RSS GB | load avg |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['engine']} | {r.get('blas_core', 'torch')} | {r['width']} | {r['load_s']:.1f} | {r['prior_text_s']:.2f} | {r['prior_step_s']:.2f} | "
              f"{r['decoder_step_s']:.2f} | {r['vqgan_s']:.2f} | {r['total_s']:.1f} | {r['peak_rss_gb']:.2f} | {r['load_avg']:.1f} |")
    if args.images:
        import numpy as np
        from PIL import Image
        print()
        print("| px | image | against | max levels apart | mean levels apart |")
        print("| ---: | --- | --- | ---: | ---: |")
        for size in args.sizes:
            names = [f"ours-{p}-{size}.png" for p in args.precisions] + [f"diffusers-{d}-{size}.png" for d in args.dtypes]
            load = lambda n: np.asarray(Image.open(os.path.join(args.images, n)).convert("RGB")).astype(np.int16)
            for i, a in enumerate(names):
                for b in names[:i]:
                    d = np.abs(load(a) - load(b))
                    print(f"| {size} | {a} | {b} | {d.max()} | {d.mean():.2f} |")


if __name__ == "__main__":
    main()
