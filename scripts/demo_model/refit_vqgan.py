#!/usr/bin/env python3
"""Refits the committed demo model's VQ-GAN decoder to the range the decoder pipeline expects (issue 15).

The committed model (trained by `git show c85cf77:scripts/demo_model/train.py`) trained its Stage A on images in
[-1, 1], but `WuerstchenDecoderPipeline` clamps `vqgan.decode(latents).sample` to [0, 1], as the real Paella VQ-GAN
outputs: every channel below mid-grey came out black (measured: the true latents of 16 clean scenes decoded to
pictures whose colours classify right in 10, whose shape in 3). This keeps the committed VQ-GAN's encoder - the
latent space its Stage B draws in - and trains only its decoder to output the image in [0, 1], with the image's frame
and corners weighted (the transposed convolutions give a corner pixel a quarter of an interior one's taps). It
rewrites Sources/Wuerstchen/Resources/DemoModel/decoder/vqgan (fp16 safetensors) in place; run it once on the
c85cf77 model (the committed one already carries it), then scripts/fixtures/demo_model.py:

    ~/venv/bin/python scripts/demo_model/refit_vqgan.py [--steps 800]

Seeded; about 3 minutes on 2 cores.
"""
import argparse
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import lr_factor, reconstruction_loss, stage_a_crops  # noqa: E402  (stage a's data, loss, schedule)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FOLDER = os.path.join(REPO, "Sources", "Wuerstchen", "Resources", "DemoModel", "decoder", "vqgan")
SEED = 20231208


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel
    torch.manual_seed(SEED)
    vq = PaellaVQModel.from_pretrained(FOLDER, torch_dtype=torch.float32)
    encoder = (vq.in_block, vq.down_blocks)
    for part in encoder:
        part.eval().requires_grad_(False)
    decoder_params = [p for p in vq.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(decoder_params, lr=5e-4, weight_decay=0.01)
    started, window = time.time(), []
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = 5e-4 * lr_factor(step, 50, args.steps)
        rng = random.Random(SEED * 1_000_003 + step)
        gen = torch.Generator().manual_seed(SEED + step)
        x = stage_a_crops(rng, 16)
        with torch.no_grad():
            h = vq.encode(x * 2 - 1).latents  # the committed encoder's input range
            h = h + 0.05 * torch.randn(h.shape, generator=gen)
        y = vq.decode(h).sample
        loss = reconstruction_loss(y, x, corners=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder_params, 1.0)
        opt.step()
        window.append(loss.item())
        if (step + 1) % 50 == 0:
            print(f"refit: step {step + 1}/{args.steps} loss {np.mean(window):.5f} "
                  f"{(time.time() - started) / 50:.2f} s/step", flush=True)
            window, started = [], time.time()
    vq.eval().to(torch.float16).save_pretrained(FOLDER, safe_serialization=True)
    print(f"refit: wrote {FOLDER}", flush=True)


if __name__ == "__main__":
    main()
