#!/usr/bin/env python3
"""Parity of mica's SAM with the PyTorch reference (MobileSAM's own code for MobileSAM, Meta's
`segment_anything` for SAM ViT-B/L/H).

Three subcommands:

  tensors  Same image, same point prompts: the image embedding, the low-resolution mask logits,
           the predicted IoUs and the full-resolution masks of mica (written by
           `cargo run -p mica-sam --example sam_dump`) against `SamPredictor`.
  random-checkpoint  Writes a SAM ViT-B/L/H checkpoint (`torch.save` of the state dict, like
           Meta's files) with random weights, including the relative-position tables and the
           position embedding (zero at initialisation), for `tensors --model vit_b` where the
           real checkpoints cannot be downloaded.
  amg      Automatic mask generation on the same images with the same settings: mica's masks
           (written by `cargo run -p mica-sam --example sam_amg`) against
           `SamAutomaticMaskGenerator`. Per image: number of masks (goal: within 5 %), and the
           IoU of each reference mask with its matched mica mask (one-to-one greedy matching by
           decreasing IoU; goal: median >= 0.95). Reference timings are printed too.

The reference side needs `torch`, `torchvision`, `timm` and `mobilesam-mirror` (PyPI), and
`segment-anything` for ViT-B/L/H; without them the reference is skipped and an earlier reference
run can be reused (`--ref-dir`).

Examples:
  cargo run -p mica-sam --example sam_dump -- W IMG /tmp/mica_t 100,120 300,200
  python scripts/sam_parity.py tensors --weights W --image IMG --mica-dir /tmp/mica_t \
      --points 100,120 300,200
  cargo run -p mica-sam --example sam_amg -- W /tmp/mica_amg custom 32 IMG...
  python scripts/sam_parity.py amg --weights W --preset custom --points-per-side 32 \
      --mica-dir /tmp/mica_amg --ref-dir /tmp/ref_amg IMG...
"""
import argparse
import json
import os
import sys
import time

import numpy as np

PRESETS = {
    "standard": {},
    "custom": {"pred_iou_thresh": 0.98, "stability_score_thresh": 0.98, "box_nms_thresh": 0.90},
}


def load_rgb8(path):
    """The 8-bit RGB image both sides see: 8-bit data unchanged, gray repeated; 16-bit and float
    data stretched between the 0.5 and 99.5 percentiles (mica's ImagePrep default)."""
    from PIL import Image

    im = np.array(Image.open(path))
    if im.dtype != np.uint8:
        im = im.astype(np.float64)
        v = np.sort(im.ravel())
        lo = v[int(round(0.005 * (len(v) - 1)))]
        hi = v[int(round(0.995 * (len(v) - 1)))]
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        im = np.clip(np.round((im - lo) * scale), 0, 255).astype(np.uint8)
    if im.ndim == 2:
        im = np.stack([im] * 3, axis=-1)
    return im[..., :3]


def reference_model(weights, model="mobile_sam"):
    try:
        import torch  # noqa: F401
        if model == "mobile_sam":
            from mobile_sam import sam_model_registry
        else:
            from segment_anything import sam_model_registry
    except ImportError as e:
        print(f"reference skipped: {e} (pip install torch torchvision timm mobilesam-mirror segment-anything)")
        return None
    sam = sam_model_registry["vit_t" if model == "mobile_sam" else model](checkpoint=weights)
    sam.eval()
    return sam


def predictor_class(model):
    if model == "mobile_sam":
        from mobile_sam import SamPredictor
    else:
        from segment_anything import SamPredictor
    return SamPredictor


def cmd_random_checkpoint(a):
    import torch
    from segment_anything import sam_model_registry

    torch.manual_seed(a.seed)
    sam = sam_model_registry[a.model]()
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if "rel_pos" in name or name.endswith("pos_embed"):
                p.copy_(torch.randn_like(p) * 0.1)
    torch.save(sam.state_dict(), a.out)
    print(f"{a.out}: random {a.model} ({sum(p.numel() for p in sam.parameters())} parameters)")
    return 0


def read_f32(path, shape):
    return np.fromfile(path, dtype="<f4").reshape(shape)


def cmd_tensors(a):
    import torch
    SamPredictor = predictor_class(a.model)

    meta = json.load(open(os.path.join(a.mica_dir, "meta.json")))
    pts = [tuple(float(v) for v in p.split(",")) for p in a.points]
    n = meta["n_prompts"]
    if n != len(pts):
        sys.exit(f"mica dump has {n} prompts, {len(pts)} given")
    sam = reference_model(a.weights, a.model)
    if sam is None:
        return 2
    img = load_rgb8(a.image)
    h, w = img.shape[:2]
    pred = SamPredictor(sam)
    t = time.time()
    with torch.no_grad():
        pred.set_image(img)
    ref_embed_ms = (time.time() - t) * 1e3
    ref_emb = pred.features[0].numpy()
    mica_emb = read_f32(os.path.join(a.mica_dir, "embedding.f32"), ref_emb.shape)
    d = np.abs(ref_emb - mica_emb)
    print(f"embedding: max |diff| {d.max():.3e}, mean |diff| {d.mean():.3e}, "
          f"ref mean |x| {np.abs(ref_emb).mean():.3e}, "
          f"cosine {float((ref_emb * mica_emb).sum() / np.linalg.norm(ref_emb) / np.linalg.norm(mica_emb)):.6f}")
    mica_low = read_f32(os.path.join(a.mica_dir, "lowres.f32"), (n, 3, 256, 256))
    mica_iou = read_f32(os.path.join(a.mica_dir, "iou.f32"), (n, 3))
    mica_masks = np.fromfile(os.path.join(a.mica_dir, "masks.u8"), dtype=np.uint8).reshape(n, 3, h, w)
    ious = []
    t = time.time()
    for i, (x, y) in enumerate(pts):
        with torch.no_grad():
            masks, iou, low = pred.predict(point_coords=np.array([[x, y]]), point_labels=np.array([1]),
                                           multimask_output=True)
        dl = np.abs(low - mica_low[i])
        for k in range(3):
            inter = np.logical_and(masks[k], mica_masks[i, k] > 0).sum()
            union = np.logical_or(masks[k], mica_masks[i, k] > 0).sum()
            mi = inter / union if union else 1.0
            ious.append(mi)
            print(f"prompt {i} ({x:.0f},{y:.0f}) mask {k}: iou_pred ref {iou[k]:.4f} mica {mica_iou[i, k]:.4f}; "
                  f"logits max |diff| {dl[k].max():.3e}; mask IoU {mi:.4f} (ref area {masks[k].sum()})")
    ref_decode_ms = (time.time() - t) * 1e3
    print(f"median mask IoU {np.median(ious):.4f}, min {np.min(ious):.4f}")
    print(f"reference: embed_ms {ref_embed_ms:.0f}, decode_ms {ref_decode_ms:.0f} for {n} prompts "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads); "
          f"mica: embed_ms {meta['embed_ms']:.0f}, decode_ms {meta['decode_ms']:.0f}")
    return 0


def rle_encode(mask):
    """Uncompressed COCO RLE (column-major runs, starting with zeros)."""
    h, w = mask.shape
    flat = mask.T.ravel().astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [h, w], "counts": counts}


def rle_decode(rle):
    h, w = rle["size"]
    flat = np.zeros(h * w, dtype=bool)
    idx, val = 0, False
    for c in rle["counts"]:
        if val:
            flat[idx:idx + c] = True
        idx += c
        val = not val
    return flat.reshape(w, h).T


def run_reference_amg(sam, image_path, preset, pps):
    import torch
    from mobile_sam import SamAutomaticMaskGenerator

    gen = SamAutomaticMaskGenerator(sam, points_per_side=pps, **PRESETS[preset])
    img = load_rgb8(image_path)
    cuda = next(sam.parameters()).is_cuda
    if cuda:  # warm-up: CUDA context, kernels, cuBLAS handles (not timed)
        with torch.no_grad():
            gen.generate(img)
        torch.cuda.synchronize()
    t = time.time()
    with torch.no_grad():
        masks = gen.generate(img)
    if cuda:
        torch.cuda.synchronize()
    ms = (time.time() - t) * 1e3
    return {
        "image": image_path, "total_ms": ms, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "device": str(next(sam.parameters()).device),
        "masks": [{"segmentation": rle_encode(m["segmentation"]), "predicted_iou": m["predicted_iou"],
                   "stability_score": m["stability_score"], "area": int(m["area"])} for m in masks],
    }


def match_ious(ref, ours):
    """Greedy one-to-one matching by decreasing IoU; returns the IoU of each reference mask with
    its partner (0 when unmatched)."""
    if not ref or not ours:
        return [0.0] * len(ref)
    r = np.stack([m.ravel() for m in ref]).astype(np.float32)
    o = np.stack([m.ravel() for m in ours]).astype(np.float32)
    inter = r @ o.T
    union = r.sum(1)[:, None] + o.sum(1)[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    out = [0.0] * len(ref)
    used_r, used_o = set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] <= 0:
            break
        if i in used_r or j in used_o:
            continue
        used_r.add(i)
        used_o.add(j)
        out[i] = float(iou[i, j])
    return out


def cmd_amg(a):
    sam = None if a.no_reference else reference_model(a.weights)
    if sam is not None and a.device != "cpu":
        sam = sam.to(a.device)
    os.makedirs(a.ref_dir, exist_ok=True)
    rows = []
    for path in a.images:
        stem = os.path.splitext(os.path.basename(path))[0]
        ref_path = os.path.join(a.ref_dir, f"{stem}.{a.preset}.{a.points_per_side}.json")
        if sam is not None and not os.path.exists(ref_path):
            ref = run_reference_amg(sam, path, a.preset, a.points_per_side)
            json.dump(ref, open(ref_path, "w"))
        if not os.path.exists(ref_path):
            print(f"{stem}: no reference result ({ref_path})")
            continue
        ref = json.load(open(ref_path))
        mica_path = os.path.join(a.mica_dir, f"{stem}.json")
        if not os.path.exists(mica_path):
            print(f"{stem}: no mica result ({mica_path})")
            continue
        ours = json.load(open(mica_path))
        rm = [rle_decode(m["segmentation"]) for m in ref["masks"]]
        om = [rle_decode(m["segmentation"]) for m in ours["masks"]]
        ious = match_ious(rm, om)
        n_r, n_o = len(rm), len(om)
        diff_pct = 100.0 * (n_o - n_r) / n_r if n_r else float("nan")
        med = float(np.median(ious)) if ious else float("nan")
        rows.append((stem, n_r, n_o, diff_pct, med, ref["total_ms"], ours["total_ms"]))
        print(f"{stem}\tref {n_r}\tmica {n_o}\tdiff {diff_pct:+.1f}%\tmedian matched IoU {med:.4f}\t"
              f"ref_ms {ref['total_ms']:.0f}\tmica_ms {ours['total_ms']:.0f}", flush=True)
    if rows:
        ok_n = sum(abs(r[3]) <= 5 for r in rows)
        ok_i = sum(r[4] >= 0.95 for r in rows)
        print(f"images {len(rows)}: count within 5% on {ok_n}, median IoU >= 0.95 on {ok_i}; "
              f"mean time ref {np.mean([r[5] for r in rows]) / 1e3:.1f} s, "
              f"mica {np.mean([r[6] for r in rows]) / 1e3:.1f} s")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tensors")
    t.add_argument("--weights", required=True)
    t.add_argument("--image", required=True)
    t.add_argument("--mica-dir", required=True)
    t.add_argument("--points", nargs="+", required=True)
    t.add_argument("--model", choices=["mobile_sam", "vit_b", "vit_l", "vit_h"], default="mobile_sam")
    r = sub.add_parser("random-checkpoint")
    r.add_argument("--model", choices=["vit_b", "vit_l", "vit_h"], default="vit_b")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("out")
    m = sub.add_parser("amg")
    m.add_argument("--weights", required=True)
    m.add_argument("--preset", choices=sorted(PRESETS), default="standard")
    m.add_argument("--points-per-side", type=int, default=32)
    m.add_argument("--mica-dir", required=True)
    m.add_argument("--ref-dir", required=True, help="reference results are cached here")
    m.add_argument("--no-reference", action="store_true", help="only reuse cached reference results")
    m.add_argument("--device", default="cpu", help="torch device of the reference (cpu, cuda)")
    m.add_argument("images", nargs="+")
    a = p.parse_args()
    return {"tensors": cmd_tensors, "amg": cmd_amg, "random-checkpoint": cmd_random_checkpoint}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
