#!/usr/bin/env python3
"""Trains the embedded demo model: a toy-width Würstchen v2 pipeline (the real model classes, the real CLIP
tokenizer) on scenes drawn by code (scenes.py), and saves it in the diffusers layout under
Sources/Wuerstchen/Resources/DemoModel/{prior,decoder}. Runs by hand in a virtualenv outside the repository
with torch, diffusers 0.42 and transformers (never in CI):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch diffusers==0.42.* transformers safetensors pillow
    ~/venv/bin/python scripts/demo_model/train.py --workdir ~/demo-train          # every stage, then export

Every stage checkpoints into --workdir and resumes where it stopped when run again (the same command).
scripts/demo_model/checkpoints holds the finished stages a and effnet of the committed model (copy them into the
work folder to retrain only b and c on the same latent spaces); BENCHMARKS.md has each stage's wall time.
Stages (as in dome272/Wuerstchen; diffuzz objective: cosine alpha_cumprod with s = 0.008, noise prediction,
p2 loss weight, so that diffusers' DDPMWuerstchenScheduler samples the trained models):

    a       Stage A: PaellaVQModel as an autoencoder (the decoder pipeline decodes unquantised latents).
    effnet  The image encoder that stands where EfficientNetV2-S stands: 16 channels at 1/42.67 of the
            image, batch-normalised so that the prior pipeline's `latents * 42 - 1` gives its features; trained
            with a throw-away reconstruction head, then frozen.
    b       Stage B: WuerstchenDiffNeXt on Stage A latents given the encoder's features and the caption.
    c       Stage C: WuerstchenPrior (and its CLIP text encoder) on the encoder's normalised features.
    export  Writes both pipeline folders (fp16 safetensors) and samples a few prompts with diffusers.

a and effnet are independent, so are b and c: `--stage a,effnet` then `--stage b,c` runs each pair as two
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

# Architectures (diffusers constructor arguments). Budgeted for a 2-core CPU: the decoder's patch size 4 puts
# its first level at 1/16 of the image, so 512 px is a 32x32 grid.
VQGAN = dict(in_channels=3, out_channels=3, up_down_scale_factor=2, levels=2, bottleneck_blocks=3, embed_dim=32,
             latent_channels=4, num_vq_embeddings=64)
DECODER = dict(c_in=4, c_out=4, c_r=64, patch_size=4, c_cond=64, c_hidden=[64, 128, 128], nhead=[-1, 4, 4],
               blocks=[2, 2, 2], level_config=["CT", "CTA", "CTA"], inject_effnet=[True, True, True],
               effnet_embd=16, clip_embd=32, kernel_size=3, dropout=0.0)
PRIOR = dict(c_in=16, c=128, c_cond=64, c_r=64, depth=4, nhead=4, dropout=0.0)
PRIOR_TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
DECODER_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)

# Steps, batch sizes, learning rates per stage. `horizons` reproduce how the committed model was trained:
# each (until_step, total) pair says that up to until_step the cosine learning-rate schedule ran as if the stage
# had `total` steps (a was shortened from 2000 to 1500 steps at step 250; b and c were trained for 4000 steps,
# looked at, and extended to 8000, which restarted their schedule part-way).
PLAN = {
    "a": dict(steps=1500, batch=16, lr=2e-3, horizons=[(250, 2000), (1500, 1500)]),
    "effnet": dict(steps=2000, batch=32, lr=2e-3, horizons=[(2000, 2000)]),
    "b": dict(steps=8000, batch=8, lr=1e-3, horizons=[(4000, 4000), (8000, 8000)]),
    "c": dict(steps=8000, batch=32, lr=5e-4, horizons=[(4000, 4000), (8000, 8000)]),
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


class SceneEncoder(nn.Module):
    """Image [B, 3, 16h, 16w] in [-1, 1] -> features [B, 16, h, w], batch-normalised (mean 0, std 1 per
    channel). Stands where the real pipeline's EfficientNetV2-S stands (it sees the image at 16 pixels per
    prior latent, as EfficientNet sees 512 px at 32 per 12x12)."""

    def __init__(self, c=48, out=16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(c, c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 1), nn.GELU(),
            nn.Conv2d(2 * c, out, 1), nn.BatchNorm2d(out, affine=False))

    def forward(self, x):
        return self.net(x)


class SceneReconstructor(nn.Module):
    """Training heads of SceneEncoder only: features [B, 16, h, w] -> image [B, 3, 16h, 16w], and the scene's
    shape, colours and size from the pooled features (EfficientNet's features come from a classifier too; a
    small object changes few pixels, so reconstruction alone leaves its shape and colour weakly encoded)."""

    LABELS = {"shape": scenes.SHAPES, "colour": tuple(scenes.COLOURS), "background": tuple(scenes.COLOURS),
              "size": tuple(scenes.SIZES)}

    def __init__(self, c=48, inp=16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(inp, 2 * c, 3, 1, 1), nn.GELU(),
            nn.ConvTranspose2d(2 * c, 2 * c, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(c, c, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(c, 3, 4, 2, 1))
        self.classes = nn.ModuleDict({k: nn.Sequential(nn.Linear(2 * inp, 64), nn.GELU(), nn.Linear(64, len(v)))
                                      for k, v in self.LABELS.items()})

    def forward(self, z):
        return self.net(z)

    def label_loss(self, z, drawn):
        pooled = torch.cat([z.mean(dim=(2, 3)), z.amax(dim=(2, 3))], 1)
        loss = 0.0
        for k, names in self.LABELS.items():
            target = torch.tensor([names.index(getattr(s, k)) for s in drawn])
            loss = loss + F.cross_entropy(self.classes[k](pooled), target)
        return loss


def build(stage):
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
    torch.manual_seed(SEED + {"a": 1, "effnet": 2, "b": 3, "c": 4}[stage])
    if stage == "a":
        return {"vqgan": PaellaVQModel(**VQGAN)}
    if stage == "effnet":
        return {"encoder": SceneEncoder(), "head": SceneReconstructor()}
    if stage == "b":
        return {"decoder": WuerstchenDiffNeXt(**DECODER)}
    prior = WuerstchenPrior(**PRIOR)
    # Output head zeroed (as the original Stage C): the prior starts as the identity, noise = x, instead of
    # dividing by |1 - b| for random b near 1.
    nn.init.zeros_(prior.out[1].weight)
    nn.init.zeros_(prior.out[1].bias)
    return {"prior": prior, "text_encoder": text_encoder(PRIOR_TEXT, SEED + 5)}


# ---------------------------------------------------------------------------------------------------------
# Data and objective


def image_side(effnet_side):
    """Image side whose prior latent is effnet_side (the pipelines' ceil(side / 42.67) and int(h * 10.67))."""
    return 4 * int(effnet_side * 10.67)


def draw(rng, n, side, drop=0.0):
    images, captions, _ = scenes.batch(rng, n, side, drop)
    return torch.from_numpy(images) * 2 - 1, captions


def encoder_input(rng_state, n, effnet_side, drop=0.0):
    """The same scenes drawn at the encoder's resolution and at the image resolution."""
    rng = random.Random(rng_state)
    small, captions = draw(rng, n, 16 * effnet_side, drop)
    rng = random.Random(rng_state)
    big, _ = draw(rng, n, image_side(effnet_side), drop)
    return small, big, captions


def alpha_cumprod(t, s=0.008):
    """diffuzz / DDPMWuerstchenScheduler: cos^2 schedule, clamped to [1e-4, 0.9999]."""
    s = torch.tensor(s)
    init = torch.cos(s / (1 + s) * math.pi * 0.5) ** 2
    return (torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2 / init).clamp(0.0001, 0.9999)


def diffusion_loss(model_fn, x0, gen):
    """Noise-prediction MSE weighted by diffuzz's p2 weight (k = 1, gamma = 1), t as in train_stage_C.py."""
    t = (1 - torch.rand(x0.size(0), generator=gen)).mul(1.08).add(0.001).clamp(0.001, 1.0)
    noise = torch.randn(x0.shape, generator=gen)
    a = alpha_cumprod(t).view(-1, *[1] * (x0.dim() - 1))
    noised = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred = model_fn(noised, t)
    loss = F.mse_loss(pred, noise, reduction="none").mean(dim=list(range(1, x0.dim())))
    p2 = (1 + alpha_cumprod(t) / (1 - alpha_cumprod(t))) ** -1.0
    return (loss * p2).mean()


def encode_text(tok, encoder, captions):
    ids = tok(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    return encoder(ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state


# ---------------------------------------------------------------------------------------------------------
# Training loop with checkpoints


class EMA:
    def __init__(self, modules, decay=0.999):
        self.decay = decay
        self.shadow = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in modules.items()}

    def update(self, modules, step):
        d = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, m in modules.items():
                for k, v in m.state_dict().items():
                    sh = self.shadow[name][k]
                    if v.dtype.is_floating_point:
                        sh.mul_(d).add_(v, alpha=1 - d)
                    else:
                        sh.copy_(v)


PARTIAL = False  # --partial: export whatever the checkpoints hold (to look at a model while it trains)


def frozen(workdir, stage, name):
    """A finished stage's (EMA) weights, in eval mode."""
    path = os.path.join(workdir, f"{stage}.pt")
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
    opt = torch.optim.AdamW(params, lr=plan["lr"], weight_decay=0.0 if stage == "c" else 0.01)
    ema = EMA(modules)
    path = os.path.join(workdir, f"{stage}.pt")
    step, log = 0, []
    if os.path.exists(path):
        ck = torch.load(path, weights_only=False)
        for name, m in modules.items():
            m.load_state_dict(ck["model"][name])
        opt.load_state_dict(ck["opt"])
        ema.shadow, step, log = ck["ema"], ck["step"], ck["log"]
        print(f"{stage}: resumed at step {step}", flush=True)
    if step >= plan["steps"]:
        return

    tok = tokenizer()
    ctx = {}
    if stage == "b":
        ctx["vqgan"] = frozen(workdir, "a", "vqgan")
        ctx["encoder"] = frozen(workdir, "effnet", "encoder")
        ctx["text"] = text_encoder(DECODER_TEXT, SEED + 6).eval().requires_grad_(False)
        ctx["scale"] = latent_scale(workdir)
    if stage == "c":
        ctx["encoder"] = frozen(workdir, "effnet", "encoder")

    for m in modules.values():
        m.train()
    started, window = time.time(), []
    while step < plan["steps"]:
        # Schedule: linear warm-up over 200 steps, cosine decay to a tenth over the current horizon.
        frac = step / next(total for until, total in plan["horizons"] if step < until)
        lr = plan["lr"] * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        rng_state = SEED * 1_000_003 + step * 7 + {"a": 1, "effnet": 2, "b": 3, "c": 4}[stage]
        gen = torch.Generator().manual_seed(rng_state)
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


def step_loss(stage, modules, ctx, tok, rng_state, n, gen):
    rng = random.Random(rng_state)
    if stage == "a":
        # Whole scenes at several scales, cropped to 128 px; latents jittered so that the decoder tolerates
        # Stage B's imperfect latents.
        side = rng.choice([128, 192, 256, 384])
        x, _ = draw(rng, n, side)
        if side > 128:
            i, j = rng.randrange(0, side - 128 + 1, 4), rng.randrange(0, side - 128 + 1, 4)
            x = x[:, :, i:i + 128, j:j + 128]
        vq = modules["vqgan"]
        h = vq.encode(x).latents
        h = h + 0.05 * torch.randn(h.shape, generator=gen)
        y = vq.decode(h).sample
        return F.mse_loss(y, x) + 0.5 * F.l1_loss(y, x)
    side = rng.choice(EFFNET_SIDES)
    # Batches by pixels: a 512 px batch costs four 256 px ones.
    n = max(2, n * 36 // (side * side)) if side > 6 else n
    if stage == "effnet":
        images, _, drawn = scenes.batch(rng, n, 16 * side)
        x = torch.from_numpy(images) * 2 - 1
        z = modules["encoder"](x)
        z = z + 0.1 * torch.randn(z.shape, generator=gen)
        head = modules["head"]
        return F.mse_loss(head(z), x) + 0.05 * head.label_loss(z, drawn)
    if stage == "b":
        small, big, captions = encoder_input(rng_state, n, side, DROP_CAPTION)
        with torch.no_grad():
            latents = ctx["vqgan"].encode(big).latents / ctx["scale"]
            z = ctx["encoder"](small)
            # Features as the prior will hand them over: a little noise, and zeros (the unconditional branch
            # of decoder guidance) for a tenth of the batch.
            z = z + 0.1 * torch.randn(z.shape, generator=gen)
            effnet = z * LATENT_MEAN - LATENT_STD
            keep = (torch.rand(n, generator=gen) > 0.1).float().view(-1, 1, 1, 1)
            effnet = effnet * keep
            clip = encode_text(tok, ctx["text"], captions)
        return diffusion_loss(lambda xt, t: modules["decoder"](xt, t, effnet=effnet, clip=clip), latents, gen)
    # Stage C: the prior learns the encoder's normalised features, (features + 1) / 42 = z.
    small, captions = draw(random.Random(rng_state), n, 16 * side, DROP_CAPTION)
    with torch.no_grad():
        z = ctx["encoder"](small)
    text = encode_text(tok, modules["text_encoder"], captions)
    return diffusion_loss(lambda xt, t: modules["prior"](xt, t, text), z, gen)


def measure_latents(workdir):
    """The VQ-GAN's scale_factor: the std of its encoder's latents, so that Stage B's latents have std 1."""
    vq = frozen(workdir, "a", "vqgan")
    with torch.no_grad():
        x, _ = draw(random.Random(SEED), 64, 256)
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
    ap.add_argument("--stage", default="all", help="all, or a comma-separated list of a, effnet, b, c, export")
    ap.add_argument("--partial", action="store_true", help="export: allow unfinished stage b/c checkpoints")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (default: 1 when two "
                    "stages run side by side, else all cores)")
    args = ap.parse_args()
    global PARTIAL
    PARTIAL = args.partial
    os.makedirs(args.workdir, exist_ok=True)
    stages = ["a,effnet", "b,c", "export"] if args.stage == "all" else [args.stage]
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
