#!/usr/bin/env python3
"""Stage B on its own (issue 15's diagnosis): a work folder's decoder given the *true* scene features of 16 scenes
(scenes.scene_features, 256 px), sampled by diffusers' DDPMWuerstchenScheduler with 12 steps from t = 1 (as the
pipeline does) and from properly noised latents at t = 0.917 and 0.75; per step the MSE of the clean-latent estimate
against the true latents, and the decoded pictures judged by evaluate.classify. Then the true latents with added
noise, decoded by stage A, as the ceiling. Unfinished checkpoints are read as they are.

    ~/venv/bin/python scripts/demo_model/diagnose_decoder.py --workdir ~/demo-train [--threads 2] [--images DIR]
"""
import argparse
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402
import scenes  # noqa: E402
import train  # noqa: E402


def hits_of(drawn, images):
    hits = dict(background=0, colour=0, shape=0, position=0)
    for s, im in zip(drawn, images):
        v = evaluate.classify(im)
        for k in hits:
            hits[k] += v[k] == getattr(s, k)
    return hits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", help="also write each run's 16 pictures as one PNG into this folder")
    args = ap.parse_args()
    from diffusers import DDPMWuerstchenScheduler
    torch.set_num_threads(args.threads)
    train.PARTIAL = True
    W = args.workdir
    dec, vq, scale = train.frozen(W, "b", "decoder"), train.frozen(W, "a", "vqgan"), train.latent_scale(W)
    tok, text = train.tokenizer(), train.text_encoder(train.DECODER_TEXT, train.SEED + 6).eval()
    rng = random.Random(123)
    drawn = [scenes.random_scene(rng, jitter=False) for _ in range(16)]
    captions = [s.caption(rng) for s in drawn]
    side = 6  # prior latent side of a 256 px image
    with torch.no_grad():
        images = torch.from_numpy(np.stack([s.render(train.image_side(side)) for s in drawn]).transpose(0, 3, 1, 2))
        x0 = vq.encode(images).latents / scale
        effnet = train.features(drawn, side) * train.LATENT_MEAN - train.LATENT_STD
        clip, _ = train.encode_text(tok, text, captions)
    scheduler = DDPMWuerstchenScheduler()
    scheduler.set_timesteps(12)
    ts = scheduler.timesteps
    for start in (0, 1, 3):
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            a = train.alpha_cumprod(ts[start].view(1))
            latents = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=g)
            errors = []
            for t in ts[start:-1]:
                r = t.expand(x0.size(0))
                eps = dec(latents, r, effnet=effnet, clip=clip)
                ab = train.alpha_cumprod(r).view(-1, 1, 1, 1)
                errors.append(float(((latents - (1 - ab).sqrt() * eps) / ab.sqrt() - x0).pow(2).mean()))
                latents = scheduler.step(eps, r[:1], latents, generator=g).prev_sample
            out = vq.decode(latents * scale).sample.clamp(0, 1).permute(0, 2, 3, 1).numpy()
        if args.images:
            from PIL import Image
            os.makedirs(args.images, exist_ok=True)
            strip = np.concatenate([np.concatenate(list(out[:8]), 1), np.concatenate(list(out[8:16]), 1)], 0)
            Image.fromarray((strip * 255).round().astype(np.uint8)).save(
                os.path.join(args.images, f"from-t{float(ts[start]):.3f}.png"))
        print(f"from t = {float(ts[start]):.3f}: x0 estimate MSE per step {' '.join(f'{e:.2f}' for e in errors)}; "
              f"final latents MSE {float((latents - x0).pow(2).mean()):.3f}; right of 16: {hits_of(drawn, out)}", flush=True)
    for noise in (0.0, 0.02, 0.05):
        with torch.no_grad():
            g = torch.Generator().manual_seed(1)
            out = vq.decode((x0 + noise ** 0.5 * torch.randn(x0.shape, generator=g)) * scale).sample
        print(f"true latents + noise of MSE {noise}, decoded: right of 16: "
              f"{hits_of(drawn, out.clamp(0, 1).permute(0, 2, 3, 1).numpy())}", flush=True)


if __name__ == "__main__":
    main()
