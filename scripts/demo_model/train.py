#!/usr/bin/env python3
"""Trains the embedded demo model: a toy-width Würstchen v2 pipeline (the real model classes, the real CLIP
tokenizer) on scenes drawn by code (scenes.py), and saves it in the diffusers layout under
Sources/Wuerstchen/Resources/DemoModel/{prior,decoder}. Runs by hand in a virtualenv outside the repository
with torch, diffusers 0.42 and transformers (never in CI):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch diffusers==0.42.* transformers safetensors pillow
    ~/venv/bin/python scripts/demo_model/train.py --workdir ~/demo-train          # every stage, then export

Every stage checkpoints into --workdir and resumes where it stopped when run again (the same command).
STATUS (read before retraining): the model committed under Resources/DemoModel was made by this script as it stands
(stage a, b and c checkpoints as committed, stage b finished at 18000 steps); scores with diffusers (evaluate.py, 64
prompts): background 100% / 100%, object colour 98.4% / 100%, shape 29.7% / 29.7%, position 98.4% / 100% at 256 / 512 px
(its stage b at step 10000, shipped before: 100 / 93.8 / 28.1-29.7 / 95.3-98.4; the model before
it, `git show c85cf77:scripts/demo_model/train.py` with a learned image encoder, and
`git show 1ef3c89:scripts/demo_model/refit_vqgan.py` that refitted its VQ-GAN's decoder to [0, 1]:
100 / 85.9-100 / 19-22 / 8-16). Shapes are still blobs (chance is 25%): the next thing to improve. What made it:
    - stage a: trained on images in [0, 1] (the decoder pipeline clamps the VQ-GAN's output to [0, 1]; the
      earlier model's stage a was trained on [-1, 1], so every channel below mid-grey came out clamped to 0),
      frame and corners weighted: clean reconstructions classify right in 32 of 32 at 256 and at 512 px.
    - features: an analytic scene encoder (scenes.scene_features: colours, shape, extent as constant fields; offsets
      and three distance fields (the object's own signed distance, radial, Chebyshev, each over the extent) fitted
      through the decoder's own bicubic-antialias resize, scenes.field_fit). Sampled linear fields came out of that
      resize warped by up to 3 tokens (8 px each at 256 px) inside the image, so the decoder's targets moved with
      the object's position; fitted: under 0.3 tokens inside, 1.4 at the border. The prior (stage c, 6000 steps)
      learns them: loss 0.0018.
    - decoder (stage b): with diffuzz's p2-weighted noise loss alone it never learns to draw the object from the
      features: at step 1500 from t = 1 (diffusers' first step, alpha_cumprod 1e-4) colour right in 1 of 16, from
      t = 0.75 in 12. From step 1750 the noise MSE is weighted by min((1 - a) / a, cap), the clean-latent error it
      implies (cap 100), and from step 8000 with cap 1000 and the object's latents weighted 4x. Measured by
      diagnose_decoder.py (the decoder alone, true features, 16 scenes at 256 px, from t = 1), colour / shape /
      position of 16: step 2500 2 / 5 / 10, step 5000 7 / 5 / 13, step 8000 10 / 7 / 14 (end to end 256 px: colour
      48.4%, position 76.6%), step 10000 14 / 6 / 16 (end to end as above).
      scripts/demo_model/diagnose_decoder.py measures the decoder alone on a work folder (--images writes pictures).
      scripts/demo_model/feature_ceiling.py: what the fields alone allow (shape 61-70% at 256 px, 89.5% at 512 px).
scripts/demo_model/checkpoints holds a and c (finished, weights only) of the committed model and b with optimizer
state (finished: step 18000), with their logs. The decoder alone (diagnose_decoder.py, true features, 16 scenes at
256 px) from t = 1: colour 16 / 14 / 15, shape 7 / 6 / 4, position 16 of 16 at steps 12000 / 10000 / 18000; from
t = 0.75 at step 18000: shape 12 of 16, and the true latents with noise of MSE 0.05 decode to 7 of 16 shapes. The
first step's clean-latent estimate from t = 1 (MSE 0.10 at step 18000, 0.03 from t = 0.75) is a blob the later
steps keep: shape is decided there, and longer training of this objective no longer moves it (an uncapped x0 weight
made it worse: final MSE 0.245 against 0.124). What to try next is a change of objective or width, not more steps.
Stages (as in dome272/Wuerstchen; diffuzz objective: cosine alpha_cumprod with s = 0.008, noise prediction,
p2 loss weight, so that diffusers' DDPMWuerstchenScheduler samples the trained models):

    a       Stage A: PaellaVQModel as an autoencoder (the decoder pipeline decodes unquantised latents).
    b       Stage B: WuerstchenDiffNeXt on Stage A latents given the scene features and the caption.
    c       Stage C: WuerstchenPrior (and its CLIP text encoder) on the normalised scene features.
    export  Writes both pipeline folders (fp16 safetensors).

b and c are independent: `--stage b,c` runs them as two
processes of one thread each (torch's small CPU ops scale poorly with threads). Seeded: the same command on
the same torch version retrains the same model up to floating-point summation order.
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = os.path.join(REPO, "Sources", "CLIP", "Resources")
OUT = os.path.join(REPO, "Sources", "Wuerstchen", "Resources", "DemoModel")
SEED = 20231207

# Architectures (diffusers constructor arguments). Budgeted for a 2-core CPU. The decoder's patch size 2 puts its
# first level at 1/8 of the image (a 32x32 grid at 256 px): its job is local, to draw the object that the feature
# fields describe, so two levels suffice.
VQGAN = dict(in_channels=3, out_channels=3, up_down_scale_factor=2, levels=2, bottleneck_blocks=3, embed_dim=32,
             latent_channels=4, num_vq_embeddings=64)
DECODER = dict(c_in=4, c_out=4, c_r=64, patch_size=2, c_cond=64, c_hidden=[48, 96], nhead=[-1, 4],
               blocks=[2, 2], level_config=["CT", "CTA"], inject_effnet=[True, True],
               effnet_embd=16, clip_embd=32, kernel_size=3, dropout=0.0)
PRIOR = dict(c_in=16, c=128, c_cond=64, c_r=64, depth=6, nhead=4, dropout=0.0)
PRIOR_TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
DECODER_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)

# Steps, batch sizes, learning rates per stage; `horizons` are (until_step, total) pairs: up to until_step the
# cosine learning-rate schedule runs as if the stage had `total` steps (a stage extended after a look at it
# keeps the history that trained it). Stage a is the committed one (scripts/demo_model/checkpoints).
PLAN = {
    # a: 2000 steps as an autoencoder, then 600 of its decoder alone (decoder_from; the encoder frozen at its EMA
    # weights, so stage b's latents do not move) with the image's corners weighted 300x: the transposed
    # convolutions give a corner pixel a quarter of an interior one's taps, and after the first 2000 steps
    # corners of bright backgrounds came out 25-35 levels dark, which a pixel classifier reads as part of the object.
    "a": dict(steps=2600, batch=16, lr=2e-3, horizons=[(2000, 2000), (2600, 2600)], decoder_from=2000),
    # b: 1750 steps of diffuzz's objective (noise MSE, p2 weight), then (x0_weight_from) the noise MSE weighted by
    # min((1 - a) / a, 100) for alpha_cumprod a: the error of the clean latents it implies, capped at 100x the noise
    # error near t = 1. Measured at step 1500 with the p2 weight alone: from t = 1 the sampler drew the background
    # and no object (colour right in 1 of 16; from t = 0.75, 12 of 16): at high noise the p2-weighted noise loss
    # barely sees the clean latents ((1 - a) / a is 60 at t = 0.917), so the decoder never learns to draw them from
    # the features, which only it has there.
    # Extended from 5000 to 8000 steps after a look at step 5000 (scores still rising from 2500 to 5000).
    # From step 8000 (after a look at step 8000: from t = 1 colour 10 / shape 7 / position 14 of 16, end to end 256 px
    # colour 48.4, shape 15.6, position 76.6; the first step's clean-latent estimate, MSE 0.28 against 0.06 from
    # t = 0.917, fixes a blob the later steps keep) the cap is 1000 (x0_cap_from) and the object's latents, dilated by
    # a latent pixel, weigh 4x (object_weight_from): the shapes came out as blobs with mixed-colour edges.
    # From step 10000 (after session 2026-12-04's look: end to end shape 28.1 / 29.7%, the decoder alone given the
    # true features draws blobs: rounded squares, no ring holes, triangles without corners) the latents within a
    # latent pixel of the object's outline weigh 12x (edge_weight_from): the outline is what tells the shapes apart
    # and under 10% of the latents; the loss was still falling (0.086 at 8200 -> 0.059 at 10000).
    "b": dict(steps=18000, batch=8, lr=1e-3,
              horizons=[(1750, 3750), (5000, 5000), (8000, 8000), (10000, 10000), (18000, 18000)],
              x0_weight_from=1750, x0_cap_from=8000, object_weight_from=8000, edge_weight_from=10000),
    "c": dict(steps=6000, batch=32, lr=1e-3, horizons=[(6000, 6000)]),
}
# Prior latent sides trained (image side = 4 * int(side * 10.67)): 128, 256, 384 and 512 px.
EFFNET_SIDES = [3, 6, 6, 6, 9, 12, 12, 12]
LATENT_MEAN, LATENT_STD = 42.0, 1.0  # the prior pipeline's de-normalisation: features = x * 42 - 1
DROP_CAPTION = 0.1


# ---------------------------------------------------------------------------------------------------------
# Models


def tokenizer():
    from transformers import CLIPTokenizer
    return CLIPTokenizer(os.path.join(VOCAB, "vocab.json"), os.path.join(VOCAB, "merges.txt"), model_max_length=77)


def text_encoder(spec, seed):
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", projection_dim=spec["hidden_size"],
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, **spec)
    return CLIPTextModel(cfg)


def _feature_stats():
    """Per-channel mean and std of scenes.scene_features over random scenes (fixed seed): the normalisation that
    gives the prior unit-variance targets, as the real prior's EfficientNet features are normalised."""
    rng = random.Random(SEED)
    f = np.stack([scenes.scene_features(scenes.random_scene(rng), 6) for _ in range(4000)])
    return torch.from_numpy(f.mean(axis=(0, 2, 3))), torch.from_numpy(f.std(axis=(0, 2, 3)))


FEATURE_MEAN, FEATURE_STD = _feature_stats()


def features(drawn, side):
    """The image encoder (scenes.scene_features, standing where EfficientNetV2-S stands), normalised:
    [B, 16, side, side] with mean 0 and std 1 per channel. The prior learns these; the decoder is given
    them de-normalised as the prior pipeline hands them over (x * 42 - 1)."""
    f = torch.from_numpy(np.stack([scenes.scene_features(s, side) for s in drawn]))
    return (f - FEATURE_MEAN.view(1, -1, 1, 1)) / FEATURE_STD.view(1, -1, 1, 1)


class CaptionParser(nn.Module):
    """Training head of the prior's text encoder only (not exported): the scene's shape, colours, size and
    position read from the encoder's pooled (end-of-text) state. It teaches the small encoder, trained from
    scratch, which colour word belongs to the object and which to the background long before the diffusion
    loss alone would."""

    LABELS = {"shape": scenes.SHAPES, "colour": tuple(scenes.COLOURS), "background": tuple(scenes.COLOURS),
              "size": tuple(scenes.SIZES), "position": tuple(scenes.POSITIONS)}

    def __init__(self, width):
        super().__init__()
        self.heads = nn.ModuleDict({k: nn.Linear(width, len(v)) for k, v in self.LABELS.items()})

    def loss(self, pooled, drawn, captions):
        keep = torch.tensor([c != "" for c in captions])
        if not keep.any():
            return pooled.sum() * 0
        total = 0.0
        for k, names in self.LABELS.items():
            target = torch.tensor([names.index(getattr(s, k)) for s in drawn])
            total = total + F.cross_entropy(self.heads[k](pooled[keep]), target[keep])
        return total


def build(stage):
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    torch.manual_seed(SEED + {"a": 1, "b": 3, "c": 4}[stage])
    if stage == "a":
        return {"vqgan": PaellaVQModel(**VQGAN)}
    if stage == "b":
        decoder = WuerstchenDiffNeXt(**DECODER)
        # The decoder is handed the features de-normalised, 42 z - 1 (std 42), and its effnet mappers are single
        # 1x1 convolutions feeding the blocks' MLPs unnormalised: at the default init their outputs are ~40x
        # the scale of everything else, the MLPs' kinks sit at the origin and Adam (steps ~lr in absolute
        # terms) needs tens of thousands of steps to move them to the objects' edges (measured without this:
        # after 6000 steps the decoder drew the background and not the object; with it, see STATUS above). So
        # the mappers start as W0 z + b0 (their default init on z) and learn at lr / 42 (train's param groups):
        # the same model, trained on z's scale.
        with torch.no_grad():
            for mapper in decoder.effnet_mappers:
                if mapper is not None:
                    mapper.weight.div_(LATENT_MEAN)
                    mapper.bias.add_(mapper.weight.sum(dim=(1, 2, 3)) * LATENT_STD)
        return {"decoder": decoder}
    prior = WuerstchenPrior(**PRIOR)
    # Output head zeroed (as the original Stage C): the prior starts as the identity, noise = x, instead of
    # dividing by |1 - b| for random b near 1.
    nn.init.zeros_(prior.out[1].weight)
    nn.init.zeros_(prior.out[1].bias)
    return {"prior": prior, "text_encoder": text_encoder(PRIOR_TEXT, SEED + 5),
            "parser": CaptionParser(PRIOR_TEXT["hidden_size"])}


# ---------------------------------------------------------------------------------------------------------
# Data and objective


def image_side(effnet_side):
    """Image side whose prior latent is effnet_side (the pipelines' ceil(side / 42.67) and int(h * 10.67))."""
    return 4 * int(effnet_side * 10.67)


def draw(rng, n, side, drop=0.0):
    """Images [n, 3, side, side] in [0, 1]: the range the decoder pipeline's VQ-GAN output is clamped to
    (`vqgan.decode(latents).sample.clamp(0, 1)`, as the real Paella VQ-GAN's), captions, scenes."""
    images, captions, drawn = scenes.batch(rng, n, side, drop)
    return torch.from_numpy(images), captions, drawn


def alpha_cumprod(t, s=0.008):
    """diffuzz / DDPMWuerstchenScheduler: cos^2 schedule, clamped to [1e-4, 0.9999]."""
    s = torch.tensor(s)
    init = torch.cos(s / (1 + s) * math.pi * 0.5) ** 2
    return (torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2 / init).clamp(0.0001, 0.9999)


def diffusion_loss(model_fn, x0, gen, x0_weight=False, x0_cap=100.0, pixel_weight=None):
    """Noise-prediction MSE weighted by diffuzz's p2 weight (k = 1, gamma = 1), t as in train_stage_C.py; with
    x0_weight, weighted by min((1 - a) / a, 100) instead: the MSE of the clean sample the predicted noise implies,
    (1 - a) / a times the noise's, capped (x0_cap) near t = 1 where it would be 10^4 times (alpha_cumprod 1e-4). The
    same as p2 = 1 - a at low noise (a near 1). pixel_weight (broadcast to x0) weighs the squared errors per element."""
    t = (1 - torch.rand(x0.size(0), generator=gen)).mul(1.08).add(0.001).clamp(0.001, 1.0)
    noise = torch.randn(x0.shape, generator=gen)
    a = alpha_cumprod(t).view(-1, *[1] * (x0.dim() - 1))
    noised = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred = model_fn(noised, t)
    err = F.mse_loss(pred, noise, reduction="none")
    if pixel_weight is not None:
        err = err * pixel_weight
    loss = err.mean(dim=list(range(1, x0.dim())))
    ac = alpha_cumprod(t)
    weight = ((1 - ac) / ac).clamp(max=x0_cap) if x0_weight else (1 + ac / (1 - ac)) ** -1.0
    return (loss * weight).mean()


def object_weights(drawn, side, weight=4.0, edge=None):
    """[n, 1, side, side]: `weight` on the latents within a latent pixel of each scene's object, 1 elsewhere;
    with `edge`, that weight on the latents within a latent pixel of the object's outline."""
    coords = np.arange(side, dtype=np.float32) + 0.5
    out = np.ones((len(drawn), 1, side, side), np.float32)
    for i, s in enumerate(drawn):
        cx, cy, extent = s.geometry()
        sdf = scenes.signed_distance(s.shape, coords[None, :] - cx * side, coords[:, None] - cy * side, extent * side)
        out[i, 0][sdf < 1.0] = weight
        if edge is not None:
            out[i, 0][np.abs(sdf) < 1.0] = edge
    return torch.from_numpy(out)


def encode_text(tok, encoder, captions):
    """(last_hidden_state, pooler_output) as the pipelines call the encoder."""
    ids = tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    out = encoder(ids.input_ids, attention_mask=ids.attention_mask)
    return out.last_hidden_state, out.pooler_output


# ---------------------------------------------------------------------------------------------------------
# Training loop with checkpoints


class EMA:
    def __init__(self, modules, decay=0.999):
        self.decay = decay
        self.shadow = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}
        self.fixed = set()  # (module, state_dict key) pairs left out of the average

    def update(self, modules, step):
        d = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, m in modules.items():
                for k, v in m.state_dict().items():
                    if (name, k) in self.fixed:  # frozen: its average stays exactly what it was
                        continue
                    sh = self.shadow[name][k]
                    if v.dtype.is_floating_point:
                        sh.mul_(d).add_(v, alpha=1 - d)
                    else:
                        sh.copy_(v)


PARTIAL = False  # --partial: export whatever the checkpoints hold (to look at a model while it trains)


def frozen(workdir, stage, name):
    """A finished stage's (EMA) weights, in eval mode."""
    path = os.path.join(workdir, f"{stage}.pt")
    if stage == "a" and not os.path.exists(path):
        raise SystemExit(f"{path} is missing: copy scripts/demo_model/checkpoints/a.pt and a.json there")
    ck = torch.load(path, weights_only=False)
    if ck["step"] < PLAN[stage]["steps"] and not (PARTIAL and stage in ("b", "c")):
        raise SystemExit(f"stage {stage} is not finished ({ck['step']}/{PLAN[stage]['steps']} steps in {path})")
    m = build(stage)[name]
    m.load_state_dict(ck["ema"][name])
    return m.eval().requires_grad_(False)


def latent_scale(workdir):
    with open(os.path.join(workdir, "a.json")) as f:
        return json.load(f)["scale_factor"]


def train(stage, workdir):
    plan = PLAN[stage]
    modules = build(stage)
    params = [p for m in modules.values() for p in m.parameters()]
    slow = {id(m.weight) for m in modules["decoder"].effnet_mappers if m is not None} if stage == "b" else set()
    groups = [{"params": [p for p in params if id(p) not in slow], "scale": 1.0}]
    if slow:
        groups.append({"params": [p for p in params if id(p) in slow], "scale": 1 / LATENT_MEAN})
    opt = torch.optim.AdamW(groups, lr=plan["lr"], weight_decay=0.0 if stage == "c" else 0.01)
    ema = EMA(modules)
    path = os.path.join(workdir, f"{stage}.pt")
    step, log = 0, []
    if os.path.exists(path):
        ck = torch.load(path, weights_only=False)
        for name, m in modules.items():
            m.load_state_dict(ck["model"][name])
        if "opt" in ck:  # the committed checkpoints of finished stages keep no optimizer state
            opt.load_state_dict(ck["opt"])
        ema.shadow, step, log = ck["ema"], ck["step"], ck["log"]
        print(f"{stage}: resumed at step {step}", flush=True)
    if step >= plan["steps"]:
        return

    tok = tokenizer()
    ctx = {}
    if stage == "b":
        ctx["vqgan"] = frozen(workdir, "a", "vqgan")
        ctx["text"] = text_encoder(DECODER_TEXT, SEED + 6).eval().requires_grad_(False)
        ctx["scale"] = latent_scale(workdir)

    for m in modules.values():
        m.train()
    started, window = time.time(), []
    while step < plan["steps"]:
        if stage == "a" and step >= plan["decoder_from"] and not ctx.get("decoder_only"):
            # Stage A's decoder alone from here: the encoder takes its EMA weights and batch-norm statistics
            # and keeps them, in eval mode (as stage b and measure_latents run it).
            vq = modules["vqgan"]
            encoder = ("in_block.", "down_blocks.")
            with torch.no_grad():
                for k, v in vq.state_dict().items():
                    if k.startswith(encoder):
                        v.copy_(ema.shadow["vqgan"][k])
                        ema.fixed.add(("vqgan", k))
            for part in (vq.in_block, vq.down_blocks):
                part.eval().requires_grad_(False)
            ctx["decoder_only"] = True
        total = next(total for until, total in plan["horizons"] if step < until)
        lr = plan["lr"] * lr_factor(step, 200, total)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("scale", 1.0)
        rng_state = SEED * 1_000_003 + step * 7 + {"a": 1, "b": 3, "c": 4}[stage]
        gen = torch.Generator().manual_seed(rng_state)
        ctx["x0_weight"] = step >= plan.get("x0_weight_from", plan["steps"])
        ctx["x0_cap"] = 1000.0 if step >= plan.get("x0_cap_from", plan["steps"]) else 100.0
        ctx["object_weight"] = step >= plan.get("object_weight_from", plan["steps"])
        ctx["edge_weight"] = 12.0 if step >= plan.get("edge_weight_from", plan["steps"]) else None
        loss = step_loss(stage, modules, ctx, tok, rng_state, plan["batch"], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(modules, step)
        step += 1
        window.append(loss.item())
        if step % 50 == 0 or step == plan["steps"]:
            mean = sum(window) / len(window)
            log.append((step, mean))
            window = []
            rate = (time.time() - started) / 50
            started = time.time()
            print(f"{stage}: step {step}/{plan['steps']} loss {mean:.5f} lr {lr:.2e} {rate:.2f} s/step", flush=True)
        if step % 250 == 0 or step == plan["steps"]:
            ck = {"model": {n: m.state_dict() for n, m in modules.items()}, "opt": opt.state_dict(),
                  "ema": ema.shadow, "step": step, "log": log}
            torch.save(ck, path + ".tmp")
            os.replace(path + ".tmp", path)
    if stage == "a":
        measure_latents(workdir)


def lr_factor(step, warmup, total):
    """The learning-rate schedule: linear warm-up over `warmup` steps, cosine decay to a tenth over `total`."""
    return min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / total)))


def stage_a_crops(rng, n):
    """Stage A's data: whole scenes at several scales, cropped to 128 px ([n, 3, 128, 128] in [0, 1])."""
    side = rng.choice([128, 192, 256, 384])
    x, _, _ = draw(rng, n, side)
    if side > 128:
        i, j = rng.randrange(0, side - 128 + 1, 4), rng.randrange(0, side - 128 + 1, 4)
        x = x[:, :, i:i + 128, j:j + 128]
    return x


def reconstruction_loss(y, x, corners=False):
    """Stage A's loss: MSE + 0.5 L1, weighted per pixel by frame_weights."""
    w = frame_weights(x.size(2), corners)
    return ((y - x) ** 2 * w).mean() + 0.5 * ((y - x).abs() * w).mean()


def frame_weights(side, corners=False):
    """Stage A's per-pixel loss weight [1, 1, side, side]: the image's frame weighs more (outer 4 pixels 10x,
    outer 2 pixels 30x), zero padding making it the hardest place to reconstruct, and a stray corner pixel is
    what a pixel classifier's bounding box sees first; with `corners`, the 4x4 corners 300x (measured: with the
    frame alone, 5 of 32 clean reconstructions still had a dark corner and a wrong shape; with corners, none)."""
    w = torch.ones(1, 1, side, side)
    for width, weight in ((4, 10.0), (2, 30.0)):
        w[..., :width, :], w[..., -width:, :], w[..., :, :width], w[..., :, -width:] = weight, weight, weight, weight
    if corners:
        w[..., :4, :4], w[..., :4, -4:], w[..., -4:, :4], w[..., -4:, -4:] = 300, 300, 300, 300
    return w


def step_loss(stage, modules, ctx, tok, rng_state, n, gen):
    rng = random.Random(rng_state)
    if stage == "a":
        # Latents jittered so that the decoder tolerates Stage B's imperfect latents.
        x = stage_a_crops(rng, n)
        vq = modules["vqgan"]
        h = vq.encode(x).latents
        h = h + 0.05 * torch.randn(h.shape, generator=gen)
        y = vq.decode(h).sample
        return reconstruction_loss(y, x, corners=ctx.get("decoder_only", False))
    side = rng.choice(EFFNET_SIDES)
    # Batches by pixels: a 512 px batch costs four 256 px ones.
    n = max(2, n * 36 // (side * side)) if side > 6 else n
    if stage == "b":
        big, captions, drawn = draw(rng, n, image_side(side), DROP_CAPTION)
        with torch.no_grad():
            latents = ctx["vqgan"].encode(big).latents / ctx["scale"]
            # Features as the prior will hand them over: off by a little noise, and zeros (the unconditional
            # branch of decoder guidance) for a twentieth of the batch.
            z = features(drawn, side)
            z = z + 0.15 * torch.randn(z.shape, generator=gen)
            effnet = z * LATENT_MEAN - LATENT_STD
            keep = (torch.rand(n, generator=gen) > 0.05).float().view(-1, 1, 1, 1)
            effnet = effnet * keep
            clip, _ = encode_text(tok, ctx["text"], captions)
            weight = object_weights(drawn, latents.size(-1), edge=ctx["edge_weight"]) if ctx["object_weight"] else None
        return diffusion_loss(lambda xt, t: modules["decoder"](xt, t, effnet=effnet, clip=clip), latents, gen,
                              ctx["x0_weight"], ctx["x0_cap"], weight)
    # Stage C: the prior learns the normalised features, (features + 1) / 42 = z, given the caption; the
    # caption parser's loss trains its text encoder alongside.
    drawn, captions = scenes.captioned(rng, n, DROP_CAPTION)
    z = features(drawn, side)
    text, pooled = encode_text(tok, modules["text_encoder"], captions)
    loss = diffusion_loss(lambda xt, t: modules["prior"](xt, t, text), z, gen)
    return loss + 0.1 * modules["parser"].loss(pooled, drawn, captions)


def measure_latents(workdir):
    """The VQ-GAN's scale_factor: the std of its encoder's latents, so that Stage B's latents have std 1."""
    vq = frozen(workdir, "a", "vqgan")
    with torch.no_grad():
        x, _, _ = draw(random.Random(SEED), 64, 256)
        h = vq.encode(x).latents
    scale = float(h.std())
    with open(os.path.join(workdir, "a.json"), "w") as f:
        json.dump({"scale_factor": scale, "latent_mean": float(h.mean())}, f)
    print(f"a: latent std {scale:.4f} mean {float(h.mean()):.4f}", flush=True)


# ---------------------------------------------------------------------------------------------------------
# Export


def export(workdir):
    from diffusers import DDPMWuerstchenScheduler, WuerstchenDecoderPipeline, WuerstchenPriorPipeline
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel
    tok = tokenizer()
    vq_src = frozen(workdir, "a", "vqgan")
    vqgan = PaellaVQModel(**VQGAN, scale_factor=latent_scale(workdir))
    vqgan.load_state_dict(vq_src.state_dict())
    decoder = frozen(workdir, "b", "decoder")
    prior = frozen(workdir, "c", "prior")
    prior_text = frozen(workdir, "c", "text_encoder")
    decoder_text = text_encoder(DECODER_TEXT, SEED + 6).eval()
    scheduler = DDPMWuerstchenScheduler()
    prior_pipe = WuerstchenPriorPipeline(tokenizer=tok, text_encoder=prior_text, prior=prior, scheduler=scheduler)
    decoder_pipe = WuerstchenDecoderPipeline(tokenizer=tok, text_encoder=decoder_text, decoder=decoder,
                                             scheduler=scheduler, vqgan=vqgan)
    for name, pipe in (("prior", prior_pipe), ("decoder", decoder_pipe)):
        folder = os.path.join(OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
        pipe.to(torch.float32)
        # transformers 5 writes tokenizer.json (3x the size): keep the original vocab.json + merges.txt.
        tdir = os.path.join(folder, "tokenizer")
        for f in os.listdir(tdir):
            if f not in ("tokenizer_config.json", "special_tokens_map.json"):
                os.remove(os.path.join(tdir, f))
        shutil.copy(os.path.join(VOCAB, "vocab.json"), tdir)
        shutil.copy(os.path.join(VOCAB, "merges.txt"), tdir)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"export: {OUT} ({size / 1e6:.1f} MB)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--stage", default="all", help="all, or a comma-separated list of a, b, c, export")
    ap.add_argument("--partial", action="store_true", help="export: allow unfinished stage b/c checkpoints")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (default: 1 when two "
                    "stages run side by side, else all cores)")
    args = ap.parse_args()
    global PARTIAL
    PARTIAL = args.partial
    os.makedirs(args.workdir, exist_ok=True)
    stages = ["a", "b,c", "export"] if args.stage == "all" else [args.stage]
    for group in stages:
        names = group.split(",")
        if len(names) > 1:
            # Side by side, one thread each, as child processes of this script.
            procs = [subprocess.Popen([sys.executable, __file__, "--workdir", args.workdir, "--stage", n,
                                       "--threads", "1"]) for n in names]
            if any(p.wait() != 0 for p in procs):
                raise SystemExit(f"stage group {group} failed")
            continue
        torch.set_num_threads(args.threads or os.cpu_count())
        if group == "export":
            export(args.workdir)
        else:
            started = time.time()
            train(group, args.workdir)
            print(f"{group}: done in {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
