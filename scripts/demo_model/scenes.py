"""Captioned scenes drawn by code: the demo model's training data, made on the fly (no download).

Grammar (the README's "what the demo model draws"):
    a [small|large] COLOUR SHAPE [on the left|on the right|at the top|at the bottom|in the center] on a COLOUR background
with one flat-filled object (circle, axis-aligned square, equilateral triangle pointing up, ring whose hole is
half the outer diameter) on a flat background of another colour. Captions come in several phrasings so that
near-misses ("a red circle, blue background", no article, background first) still work.

Geometry is in units of the image side, so a scene looks the same at every resolution. `render` anti-aliases
edges with a one-pixel ramp of the signed distance.
"""
import math
import random

import numpy as np

COLOURS = {
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (245, 220, 40), "green": (40, 170, 70),
    "blue": (40, 80, 220), "purple": (140, 60, 190), "pink": (245, 150, 200), "white": (245, 245, 245),
    "black": (20, 20, 20), "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "ring")
# Object extent (diameter, side, triangle side, ring outer diameter) as a fraction of the image side.
SIZES = {"small": 0.24, "medium": 0.36, "large": 0.48}
# Object centre (x, y) as fractions; y grows downwards.
POSITIONS = {"center": (0.5, 0.5), "left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73)}
POSITION_WORDS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
                  "center": "in the center"}


class Scene:
    def __init__(self, shape, colour, background, size="medium", position="center", jitter=(0.0, 0.0, 1.0)):
        assert colour != background
        self.shape, self.colour, self.background = shape, colour, background
        self.size, self.position = size, position
        self.jitter = jitter  # (dx, dy, scale)

    def caption(self, rng):
        """One phrasing of the scene, drawn from rng (random.Random)."""
        size = "" if self.size == "medium" else self.size + " "
        pos = POSITION_WORDS[self.position]
        if self.position == "center" and rng.random() < 0.7:
            pos = ""
        obj = f"{size}{self.colour} {self.shape}"
        bg = f"{self.background} background"
        article = "a " if rng.random() < 0.8 else ""
        variant = rng.random()
        if variant < 0.55:
            text = f"{article}{obj} {pos} on a {bg}"
        elif variant < 0.7:
            text = f"{article}{obj} {pos}, {bg}"
        elif variant < 0.8:
            text = f"{article}{obj} on a {bg} {pos}"
        elif variant < 0.9:
            text = f"a {bg} with {article}{obj} {pos}"
        else:
            text = f"{obj} {pos} on {bg}"
        return " ".join(text.replace(" ,", ",").split())

    def geometry(self):
        """(cx, cy, extent) in image sides."""
        dx, dy, scale = self.jitter
        cx, cy = POSITIONS[self.position]
        return cx + dx, cy + dy, SIZES[self.size] * scale

    def render(self, side):
        """[side, side, 3] float32 in [0, 1]."""
        cx, cy, extent = self.geometry()
        coords = np.arange(side, dtype=np.float32) + 0.5
        sdf = signed_distance(self.shape, coords[None, :] - cx * side, coords[:, None] - cy * side, extent * side)
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
        fg = np.array(COLOURS[self.colour], np.float32) / 255
        bg = np.array(COLOURS[self.background], np.float32) / 255
        return (bg + (fg - bg) * alpha).astype(np.float32)


def signed_distance(shape, x, y, extent):
    """Signed distance to the outline of `shape` (negative inside) centred on the origin, at offsets x (right) and
    y (down), extent and result in the units of x and y. A triangle's bounding box is centred on the origin."""
    if shape == "circle":
        return np.sqrt(x * x + y * y) - extent / 2
    if shape == "ring":
        d = np.sqrt(x * x + y * y)
        return np.maximum(d - extent / 2, extent / 4 - d)
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) - extent / 2
    # equilateral triangle pointing up
    h = extent * math.sqrt(3) / 2
    yt = y + h / 2  # 0 at the apex, h at the base
    # Distance to the two slanted sides: normal (±cos30, -sin30) through the apex.
    c30, s30 = math.sqrt(3) / 2, 0.5
    return np.maximum(np.maximum(-c30 * x - s30 * yt, c30 * x - s30 * yt), yt - h)


def random_scene(rng, jitter=True):
    names = list(COLOURS)
    colour = rng.choice(names)
    background = rng.choice([c for c in names if c != colour])
    size = rng.choice(list(SIZES))
    position = rng.choice(list(POSITIONS))
    j = (rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), rng.uniform(0.92, 1.08)) if jitter else (0.0, 0.0, 1.0)
    return Scene(rng.choice(SHAPES), colour, background, size, position, j)


# The image encoder's 16 channels (scene_features): object colour (3), background colour (3), shape one-hot (4),
# offset of each point from the object's centre (2), the object's extent (1), and three distance fields divided by
# the extent: the object's own signed distance, the radial distance and the Chebyshev (square) distance.
FEATURE_CHANNELS = 16


def decoder_level_side(n):
    """Side of the decoder's first level for a prior latent of side n: int(n * 10.67) latents, patch size 2."""
    return max(1, int(n * 10.67) // 2)


_FIT = {}


def field_fit(n):
    """[n, L] matrix P: the n cell values whose resizing to the decoder's first level (side L; diffusers' bicubic,
    antialias, align_corners=True, which WuerstchenDiffNeXt applies to the features) best matches (least squares)
    given values at that level's L token centres. Resizing a linear ramp does not give a ramp (the kernel is
    renormalised at the borders: measured at 6 -> 32 cells, steps of 0.005 to 0.038 where 1/32 is right), so
    the fields are fitted through the resize itself instead of sampled."""
    if n not in _FIT:
        import torch
        import torch.nn.functional as F
        level = decoder_level_side(n)
        basis = torch.eye(n, dtype=torch.float64).view(n, 1, 1, n).float()
        m = F.interpolate(basis, size=(1, level), mode="bicubic", antialias=True, align_corners=True)
        m = m.view(n, level).T.double().numpy()  # [L, n]: level values = m @ cell values
        _FIT[n] = np.linalg.pinv(m).astype(np.float32)
    return _FIT[n]


def scene_features(scene, n):
    """[16, n, n] float32: the scene encoded as fields that stand where EfficientNet's features stand in the
    real pipeline (an analytic encoder: what a perfect encoder of this grammar reads off the pixels). Constant
    fields (colours, shape, extent) and fields of position (offsets, distances) fitted so that the decoder's resize
    to its first level reproduces them at every token (field_fit)."""
    cx, cy, extent = scene.geometry()
    level = decoder_level_side(n)
    t = (np.arange(level, dtype=np.float32) + 0.5) / level
    x, y = t[None, :] - cx, t[:, None] - cy  # [1, L], [L, 1]
    p = field_fit(n)
    fit = lambda field: p @ np.broadcast_to(field, (level, level)) @ p.T  # noqa: E731
    f = np.zeros((FEATURE_CHANNELS, n, n), np.float32)
    f[0:3] = (np.array(COLOURS[scene.colour], np.float32) / 255)[:, None, None]
    f[3:6] = (np.array(COLOURS[scene.background], np.float32) / 255)[:, None, None]
    f[6 + SHAPES.index(scene.shape)] = 1
    f[10] = fit(x)
    f[11] = fit(y)
    f[12] = extent
    f[13] = fit(signed_distance(scene.shape, x, y, extent) / extent)
    f[14] = fit(np.sqrt(x * x + y * y) / extent)
    f[15] = fit(np.maximum(np.abs(x), np.abs(y)) / extent)
    return f


def batch(rng, n, side, drop_caption=0.0):
    """n random scenes: images [n, 3, side, side] in [0, 1] (NCHW for torch) and their captions
    ("" with probability drop_caption, for classifier-free guidance)."""
    scenes, captions = captioned(rng, n, drop_caption)
    images = np.stack([s.render(side) for s in scenes]).transpose(0, 3, 1, 2)
    return images, captions, scenes


def captioned(rng, n, drop_caption=0.0):
    """n random scenes and their captions, without rendering (batch's draws from rng, in the same order)."""
    scenes = [random_scene(rng) for _ in range(n)]
    return scenes, ["" if rng.random() < drop_caption else s.caption(rng) for s in scenes]


if __name__ == "__main__":
    import sys
    from PIL import Image
    rng = random.Random(0)
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/scenes"
    import os
    os.makedirs(out, exist_ok=True)
    for i in range(12):
        s = random_scene(rng)
        Image.fromarray((s.render(256) * 255).round().astype(np.uint8)).save(f"{out}/{i}.png")
        print(i, s.caption(rng))
