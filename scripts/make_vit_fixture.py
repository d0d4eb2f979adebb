#!/usr/bin/env python3
"""Writes crates/sam/tests/fixtures/vit_tiny.safetensors: a small SAM ViT image encoder with random
weights, built with the reference code (`segment_anything.modeling.ImageEncoderViT`, PyPI package
`segment-anything`), a random input and the reference output. mica's ViT encoder
(`crates/sam/src/image_encoder.rs`) is tested against it; the same code paths run in SAM ViT-B/L/H:
zero-padded windows (grid 4 → 6 for windows of 3), one global block, decomposed relative positions
(random tables, not the zero init), the neck.

    pip install torch segment-anything safetensors
    python scripts/make_vit_fixture.py
"""
import os

import torch
from safetensors.torch import save_file
from segment_anything.modeling import ImageEncoderViT

torch.manual_seed(20261201)
enc = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=16, depth=2, num_heads=2, mlp_ratio=4.0,
                      out_chans=8, qkv_bias=True, use_rel_pos=True, rel_pos_zero_init=False,
                      window_size=3, global_attn_indexes=(1,),
                      norm_layer=__import__("functools").partial(torch.nn.LayerNorm, eps=1e-6))
enc.eval()
with torch.no_grad():
    for name, p in enc.named_parameters():
        # Random everything, including the position embedding, layer norms and relative tables.
        p.copy_(torch.randn_like(p) * (0.5 if p.dim() > 1 else 0.2) + (1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0))
    x = torch.randn(1, 3, 64, 64)
    y = enc(x).permute(0, 2, 3, 1).contiguous()  # channels-last, as mica returns it
tensors = {f"image_encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}
tensors["test.input"] = x
tensors["test.output"] = y
out = os.path.join(os.path.dirname(__file__), "..", "crates", "sam", "tests", "fixtures", "vit_tiny.safetensors")
save_file(tensors, out)
print(f"{out}: {len(tensors)} tensors, output {tuple(y.shape)}, |y| mean {y.abs().mean():.3f}")
