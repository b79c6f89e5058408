#!/usr/bin/env python3
"""Semantic scores of the demo model with diffusers, as DemoModelTests.drawsWhatThePromptSays computes them in
Swift: the same prompts (SplitMix64 scenes, seed 15), the same pixel classifier (SceneClassifier.swift), the
pipelines' default settings (the default prior schedule DEFAULT_STAGE_C_TIMESTEPS, prior guidance 4, 12
decoder steps, one generator per request shared by both stages, as the engine does). Used while training to judge a
checkpoint before it is exported; the Swift test is what the suite asserts.

    ~/venv/bin/python scripts/demo_model/evaluate.py [--folders DIR] [--sides 256,512] [--count 64]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

NAMES = list(scenes.COLOURS)
PALETTE = np.array([scenes.COLOURS[c] for c in NAMES], np.float32)
SHAPES = ["circle", "square", "triangle", "ring"]
SIZES = ["small", "medium", "large"]
POSITIONS = ["center", "left", "right", "top", "bottom"]
WORDS = {"center": "", "left": " on the left", "right": " on the right", "top": " at the top", "bottom": " at the bottom"}
MASK64 = (1 << 64) - 1


def test_scenes(count, seed):
    """SceneClassifier.scenes(count:seed:): (caption, shape, colour, background, size, position) tuples."""
    state = seed

    def nxt(n):
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return (z ^ (z >> 31)) % n

    out = []
    for _ in range(count):
        colour = NAMES[nxt(len(NAMES))]
        others = [c for c in NAMES if c != colour]
        shape = SHAPES[nxt(4)]
        background = others[nxt(len(others))]
        size = SIZES[nxt(3)]
        position = POSITIONS[nxt(5)]
        s = "" if size == "medium" else size + " "
        caption = f"a {s}{colour} {shape}{WORDS[position]} on a {background} background"
        out.append(dict(caption=caption, shape=shape, colour=colour, background=background, size=size, position=position))
    return out


def nearest(rgb):
    """rgb [..., 3] in 0...255 -> (palette index, distance)."""
    d = np.sqrt(((rgb[..., None, :] - PALETTE) ** 2).sum(-1))
    return d.argmin(-1), d.min(-1)


def classify(image):
    """image [H, W, 3] in [0, 1] -> dict like SceneClassifier.Verdict (None where no object was found)."""
    h, w, _ = image.shape
    px = np.clip(image, 0, 1).astype(np.float32) * 255
    border = np.zeros((h, w), bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    idx, _ = nearest(px[border])
    votes = np.bincount(idx, minlength=len(NAMES))
    background = int(votes.argmax())  # the first maximum, as Swift's max(by:)
    bg = PALETTE[background]
    mask = np.sqrt(((px - bg) ** 2).sum(-1)) > 40
    area = int(mask.sum())
    verdict = dict(background=NAMES[background], colour=None, shape=None, position=None)
    if area <= h * w // 250:
        return verdict
    ni, _ = nearest(px[mask])
    ni = ni[ni != background]
    ov = np.bincount(ni, minlength=len(NAMES))
    colour = int(ov.argmax())
    ys, xs = np.nonzero(mask)
    minx, maxx, miny, maxy = xs.min(), xs.max(), ys.min(), ys.max()
    bw, bh = maxx - minx + 1, maxy - miny + 1
    fill = area / (bw * bh)
    cx, cy, r = minx + bw // 2, miny + bh // 2, max(1, min(bw, bh) // 16)
    win = mask[max(0, cy - r):min(h, cy + r + 1), max(0, cx - r):min(w, cx + r + 1)]
    if win.sum() * 2 < win.size:
        shape = "ring"
    elif fill > 0.9:
        shape = "square"
    elif fill > 0.66:
        shape = "circle"
    else:
        shape = "triangle"
    dx = (xs + 0.5).mean() / w - 0.5
    dy = (ys + 0.5).mean() / h - 0.5
    if max(abs(dx), abs(dy)) < 0.12:
        position = "center"
    elif abs(dx) > abs(dy):
        position = "left" if dx < 0 else "right"
    else:
        position = "top" if dy < 0 else "bottom"
    verdict.update(colour=NAMES[colour], shape=shape, position=position)
    return verdict


def score(generate, side, count=64, chunk=16, verbose=False):
    """generate(captions, side, seeds) -> images [n, side, side, 3] in [0, 1]. Returns percentages."""
    items = test_scenes(count, 15)
    hits = dict(background=0, colour=0, shape=0, position=0)
    for start in range(0, count, chunk):
        part = items[start:start + chunk]
        images = generate([s["caption"] for s in part], side, list(range(start, start + len(part))))
        for s, img in zip(part, images):
            v = classify(img)
            for k in hits:
                hits[k] += v[k] == s[k]
            if verbose and any(v[k] != s[k] for k in hits):
                print(f"  missed: '{s['caption']}' -> {v}")
    return {k: round(100 * n / count, 1) for k, n in hits.items()}


def diffusers_generate(prior_pipe, decoder_pipe):
    import torch
    from diffusers.pipelines.deprecated.wuerstchen.pipeline_wuerstchen_prior import DEFAULT_STAGE_C_TIMESTEPS

    def generate(captions, side, seeds):
        images = []
        with torch.no_grad():
            for caption, seed in zip(captions, seeds):
                g = torch.Generator().manual_seed(seed)
                emb = prior_pipe(caption, height=side, width=side, timesteps=DEFAULT_STAGE_C_TIMESTEPS,
                                 guidance_scale=4.0, generator=g, output_type="pt").image_embeddings
                out = decoder_pipe(emb, caption, num_inference_steps=12, guidance_scale=0.0, generator=g,
                                   output_type="np").images
                images.append(out[0])
        return images
    return generate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folders", default=os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "Wuerstchen",
                                                       "Resources", "DemoModel"))
    ap.add_argument("--sides", default="256,512")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
    from compare import load_pipelines  # noqa: E402
    prior_pipe, decoder_pipe = load_pipelines(os.path.join(args.folders, "prior"), os.path.join(args.folders, "decoder"),
                                              torch.float32)
    for side in map(int, args.sides.split(",")):
        print(side, score(diffusers_generate(prior_pipe, decoder_pipe), side, args.count, verbose=args.verbose), flush=True)


if __name__ == "__main__":
    main()
