#!/usr/bin/env python3
"""Writes the REAL Würstchen v2 architecture with random weights as two pipeline folders
(warp-ai/wuerstchen-prior and warp-ai/wuerstchen layouts), about 6 GB in fp16, for benchmarks on
machines without the published weights. Run by hand in a virtualenv with torch, diffusers, transformers:

    /path/to/venv/bin/python scripts/bench/make_real_random.py OUT_DIR

OUT_DIR/prior and OUT_DIR/decoder are then usable by `wuerstchen bench --prior OUT_DIR/prior --decoder OUT_DIR/decoder`
and by scripts/bench/compare.py. The tokenizer is the real CLIP vocabulary committed in Sources/CLIP/Resources.
Weights are small random normals (std 0.02) so activations stay finite; the images are noise.
"""
import gc
import json
import os
import shutil
import sys

import torch
from diffusers import DDPMWuerstchenScheduler
from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel, WuerstchenDiffNeXt, WuerstchenPrior
from transformers import CLIPTextConfig, CLIPTextModel

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def randomise(module):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return module


def save(module, folder):
    randomise(module).to(torch.float16).save_pretrained(folder, variant="fp16")
    del module
    gc.collect()


def tokenizer(folder):
    os.makedirs(folder, exist_ok=True)
    for f in ["vocab.json", "merges.txt"]:
        shutil.copy(os.path.join(REPO, "Sources", "CLIP", "Resources", f), folder)
    json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"},
              open(os.path.join(folder, "tokenizer_config.json"), "w"), indent=2)


def main():
    out = sys.argv[1]
    prior, decoder = os.path.join(out, "prior"), os.path.join(out, "decoder")
    torch.set_num_threads(os.cpu_count())
    text = lambda hidden, layers, heads, inter: CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=inter, hidden_act="gelu", max_position_embeddings=77, projection_dim=hidden))
    save(text(1280, 32, 20, 5120), os.path.join(prior, "text_encoder"))
    save(WuerstchenPrior(c_in=16, c=1536, c_cond=1280, c_r=64, depth=32, nhead=24, dropout=0.1), os.path.join(prior, "prior"))
    DDPMWuerstchenScheduler().save_pretrained(os.path.join(prior, "scheduler"))
    tokenizer(os.path.join(prior, "tokenizer"))
    json.dump({"_class_name": "WuerstchenPriorPipeline", "_diffusers_version": "0.42.1", "latent_mean": 42.0,
               "latent_std": 1.0, "resolution_multiple": 42.67, "prior": ["wuerstchen", "WuerstchenPrior"],
               "scheduler": ["diffusers", "DDPMWuerstchenScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
               "tokenizer": ["transformers", "CLIPTokenizer"]}, open(os.path.join(prior, "model_index.json"), "w"), indent=2)

    save(text(1024, 24, 16, 4096), os.path.join(decoder, "text_encoder"))
    save(WuerstchenDiffNeXt(c_in=4, c_out=4, c_r=64, patch_size=2, c_cond=1024, c_hidden=[320, 640, 1280, 1280],
                            nhead=[-1, 10, 20, 20], blocks=[4, 4, 14, 4], level_config=["CT", "CTA", "CTA", "CTA"],
                            inject_effnet=[False, True, True, True], effnet_embd=16, clip_embd=1024, kernel_size=3,
                            dropout=0.1), os.path.join(decoder, "decoder"))
    vq = PaellaVQModel()
    vq.eval()
    save(vq, os.path.join(decoder, "vqgan"))
    DDPMWuerstchenScheduler().save_pretrained(os.path.join(decoder, "scheduler"))
    tokenizer(os.path.join(decoder, "tokenizer"))
    json.dump({"_class_name": "WuerstchenDecoderPipeline", "_diffusers_version": "0.42.1", "latent_dim_scale": 10.67,
               "decoder": ["wuerstchen", "WuerstchenDiffNeXt"], "scheduler": ["diffusers", "DDPMWuerstchenScheduler"],
               "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
               "vqgan": ["wuerstchen", "PaellaVQModel"]}, open(os.path.join(decoder, "model_index.json"), "w"), indent=2)
    print("wrote", prior, "and", decoder)


if __name__ == "__main__":
    main()
