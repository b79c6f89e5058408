#!/usr/bin/env python3
"""transformers' CLIPTextModel at the ViT-bigG/14 text configuration (random weights) on 2 x 77 tokens,
the counterpart of `wuerstchen bench clip`. Run by hand: /path/to/venv/bin/python scripts/bench/clip_text.py [--threads 2]"""
import argparse
import json
import os
import time

import torch
from transformers import CLIPTextConfig, CLIPTextModel

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--repeats", type=int, default=5)
args = ap.parse_args()
torch.set_num_threads(args.threads)
model = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1280, num_hidden_layers=32, num_attention_heads=20,
                                     intermediate_size=5120, hidden_act="gelu", projection_dim=1280)).eval()
ids = torch.full((2, 77), 49407)
ids[:, 0] = 49406
mask = torch.zeros(2, 77, dtype=torch.long)
mask[:, :12] = 1
times = []
with torch.no_grad():
    model(input_ids=ids, attention_mask=mask)
    for _ in range(args.repeats):
        t = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"model": "transformers-clip-bigG-text", "batch": 2, "seconds": times[len(times) // 2],
                  "threads": torch.get_num_threads(), "torch": torch.__version__}))
