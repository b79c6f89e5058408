#!/usr/bin/env python3
"""How much of the shape the decoder can read off the scene features' spatial fields alone (issue 15's shape score).

The features are 16 fields at the prior latent's resolution (6 x 6 at 256 px, 12 x 12 at 512 px) that the decoder
resizes (bicubic, antialias) to its first level (32 x 32, 64 x 64). Thresholding the resized fields as a perfect
decoder could, upsampling to the image and judging with evaluate.classify gives the shape score a decoder reaches
without inventing detail the fields do not hold; beyond it the decoder must draw corners and holes from the shape
one-hot. Two readings: the object's own signed distance (channel 13) below 0, and per shape the field whose level
set is that shape (radial for circle and ring, Chebyshev for square, own distance for triangle).

    ~/venv/bin/python scripts/demo_model/feature_ceiling.py [--count 200]

Measured (200 scenes of the grammar without jitter, seed 5): own distance 61.0% at 256 px (circle 65/65, square
25/44, ring 25/43, triangle 7/48) and 89.5% at 512 px (65/65, 44/44, 43/43, 27/48); per-shape field 70.0% and 89.5%.
Fitting a clipped or boundary-weighted distance instead (weighted least squares through the resize; a quick
experiment on 120 scenes, not kept) does not help at 256 px (47-50% against 59%) and little at 512 px (92% against 87%). So 80% shape at 256 px needs a decoder that draws the shape from
the one-hot; at 512 px the fields allow about 90%, and the committed decoder reaches 30%.
"""
import argparse
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402
import scenes  # noqa: E402

OWN, RADIAL, CHEBYSHEV = 13, 14, 15


def masks(scene, n, side):
    """(own-distance mask, per-shape mask), [side, side] bool, as the decoder's resize shows the fields."""
    level = scenes.decoder_level_side(n)
    f = torch.from_numpy(scenes.scene_features(scene, n))[None]
    lv = F.interpolate(f, size=(level, level), mode="bicubic", antialias=True, align_corners=True)[0]

    def up(c):
        return F.interpolate(lv[c][None, None], size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()

    own = up(OWN) < 0
    if scene.shape == "circle":
        best = up(RADIAL) < 0.5
    elif scene.shape == "ring":
        r = up(RADIAL)
        best = (r < 0.5) & (r > 0.25)
    elif scene.shape == "square":
        best = up(CHEBYSHEV) < 0.5
    else:
        best = own
    return own, best


def paint(scene, mask):
    fg = np.array(scenes.COLOURS[scene.colour], np.float32) / 255
    bg = np.array(scenes.COLOURS[scene.background], np.float32) / 255
    return bg + (fg - bg) * mask.astype(np.float32)[..., None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for n, side in ((6, 256), (12, 512)):
        rng = random.Random(5)
        hits = {"own": {}, "per-shape": {}}
        for _ in range(args.count):
            s = scenes.random_scene(rng, jitter=False)
            for name, m in zip(hits, masks(s, n, side)):
                h = hits[name].setdefault(s.shape, [0, 0])
                h[0] += evaluate.classify(paint(s, m))["shape"] == s.shape
                h[1] += 1
        for name, per in hits.items():
            total = sum(h[0] for h in per.values()) / sum(h[1] for h in per.values())
            detail = ", ".join(f"{k} {h[0]}/{h[1]}" for k, h in per.items())
            print(f"{side} px, {name}: {100 * total:.1f}% ({detail})")


if __name__ == "__main__":
    main()
