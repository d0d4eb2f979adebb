#!/usr/bin/env python3
"""Extract the study's VQA-T1 answers and the expert's grades from `vqa_t1_evaluation.pdf`.

The PDF (supplementary data of Verma, Van & Wu, "Beyond Human Vision", arXiv 2405.00876, MIT
licence) lays out each of the 10 images as a block: the file name, the class, the expert's
ground truth and instrument line across the page, then three columns of answers (ChatGPT, LLaVA,
Gemini, left to right) and a "Scores" column holding the expert's 0-5 grade of each answer. The
expert coloured key responses: green = correct, red = wrong, orange = mixed or uncertain.

This script splits the columns by the words' x positions (pdfplumber), follows answers that run
over a page break, and writes one row per (image, model):

    image, class, model, answer, expert_score, expert_correct, expert_wrong, expert_uncertain

`expert_*` hold the phrases the expert coloured, separated by " | ". Usage:

    python3 -m venv /tmp/pdfvenv && /tmp/pdfvenv/bin/pip install pdfplumber==0.11.10
    /tmp/pdfvenv/bin/python scripts/extract_vqa_t1.py \
        ../shared/data/vlms-micrographs/vqa_t1_evaluation.pdf studies/vqa-t1/answers.csv

`--check FILE` compares the extraction with a committed CSV instead of writing (exit 1 if they
differ); the test `vqa_t1_extraction_reproduces_the_committed_csv` runs it where pdfplumber is
installed.
"""

import argparse
import csv
import io
import re
import sys

import pdfplumber

MODELS = ["ChatGPT", "LLaVA", "Gemini"]
# Left edges of the four columns on every page (points): ChatGPT 40, LLaVA 209, Gemini 378,
# Scores 548. A word belongs to the column its left edge falls in.
COLUMN_EDGES = [0, 205, 374, 543]
FILE_RE = re.compile(r"^L\d_[0-9a-f]{32}\.jpg$")
GREEN = (0.0, 0.69, 0.314)
RED = (0.753, 0.0, 0.0)
ORANGE = (0.69, 0.525, 0.0)
MARKS = {GREEN: "correct", RED: "wrong", ORANGE: "uncertain"}


def column_of(word):
    col = 0
    for i, edge in enumerate(COLUMN_EDGES):
        if word["x0"] >= edge:
            col = i
    return col


def colour(word):
    c = word.get("non_stroking_color")
    if c is None:
        return None
    c = tuple(round(v, 3) for v in c)
    return MARKS.get(c)


def words_of(pdf):
    """Every word of the document with its page, in reading order of the page."""
    out = []
    for pno, page in enumerate(pdf.pages):
        ws = page.extract_words(extra_attrs=["non_stroking_color"], keep_blank_chars=False)
        for w in ws:
            w["page"] = pno
            out.append(w)
    return out


def score_rows(words):
    """(page, top) of each row of three digits 0-5 in the Scores column, with the digits."""
    rows = {}
    for w in words:
        if column_of(w) == 3 and re.fullmatch(r"[0-5]", w["text"]):
            rows.setdefault((w["page"], round(w["top"])), []).append(w)
    out = []
    for key, ws in sorted(rows.items()):
        if len(ws) != 3:
            sys.exit(f"page {key[0] + 1}: a Scores row with {len(ws)} digits, expected 3")
        ws.sort(key=lambda w: w["x0"])
        out.append((key, [int(w["text"]) for w in ws]))
    return out


def header_rows(words):
    """(page, top) of each page's column header row "ChatGPT LLaVA Gemini Scores"."""
    tops = {}
    for w in words:
        if w["text"] in ("ChatGPT", "LLaVA", "Gemini", "Scores"):
            tops.setdefault((w["page"], round(w["top"])), set()).add(w["text"])
    return {k for k, v in tops.items() if len(v) == 4}


def spaced(ws):
    """Words in reading order as text. pdfplumber splits a word where its colour changes
    ("end" green, "." black): pieces of one line closer than a point are joined without a space.
    A line ending in "-" before a lowercase word is a compound broken by the wrap ("needle-" /
    "like"): joined as "needle-like"."""
    out, prev = "", None
    for w in ws:
        if prev is None:
            out = w["text"]
        elif (w["page"], round(w["top"])) == (prev["page"], round(prev["top"])):
            out += ("" if w["x0"] - prev["x1"] < 1.0 else " ") + w["text"]
        elif prev["text"].endswith("-") and w["text"][:1].islower():
            out += w["text"]
        else:
            out += " " + w["text"]
        prev = w
    return out


def in_order(ws):
    return sorted(ws, key=lambda w: (w["page"], round(w["top"]), w["x0"]))


def join_lines(ws):
    """Words of one column, in order, as text."""
    return spaced(in_order(ws))


def marked(ws, mark):
    """The phrases (runs of consecutive words) the expert coloured with `mark`."""
    phrases, run = [], []
    for w in in_order(ws):
        if colour(w) == mark:
            run.append(w)
        elif run:
            phrases.append(spaced(run))
            run = []
    if run:
        phrases.append(spaced(run))
    return " | ".join(phrases)


def extract(path):
    try:
        with pdfplumber.open(path) as pdf:
            words = words_of(pdf)
    except Exception as e:  # pdfplumber/pdfminer raise many kinds for unreadable files
        sys.exit(f"{path}: cannot read the PDF ({type(e).__name__}: {e})")
    pos = lambda w: (w["page"], w["top"])
    heads = header_rows(words)
    files = [w for w in words if FILE_RE.match(w["text"])]
    scores = score_rows(words)
    if len(files) != 10 or len(scores) != 10:
        sys.exit(f"expected 10 images and 10 score rows, found {len(files)} and {len(scores)}")
    rows = []
    for i, f in enumerate(files):
        (spage, stop), grades = scores[i]
        start = (spage, stop - 1)
        if not pos(f) < start:
            sys.exit(f"{f['text']}: its scores come before its name")
        end = pos(files[i + 1]) if i + 1 < len(files) else (10**9, 0)
        header = [w for w in words if pos(f) <= pos(w) < start]
        klass = " ".join(w["text"] for w in header if w is not f)
        m = re.search(r"Class:\s*(.*?)\s*Ground truth:", klass)
        klass = m.group(1) if m else ""
        body = [
            w
            for w in words
            if start <= pos(w) < end
            and (w["page"], round(w["top"])) not in heads
            and column_of(w) < 3
        ]
        for c, model in enumerate(MODELS):
            ws = [w for w in body if column_of(w) == c]
            rows.append(
                {
                    "image": f["text"],
                    "class": klass,
                    "model": model,
                    "answer": join_lines(ws),
                    "expert_score": grades[c],
                    "expert_correct": marked(ws, "correct"),
                    "expert_wrong": marked(ws, "wrong"),
                    "expert_uncertain": marked(ws, "uncertain"),
                }
            )
    return rows


def to_csv(rows):
    buf = io.StringIO()
    fields = ["image", "class", "model", "answer", "expert_score",
              "expert_correct", "expert_wrong", "expert_uncertain"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pdf")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--check", metavar="CSV")
    a = ap.parse_args()
    text = to_csv(extract(a.pdf))
    if a.check:
        with open(a.check, encoding="utf-8", newline="") as f:
            old = f.read()
        if old != text:
            sys.exit(f"{a.check} differs from the extraction of {a.pdf}")
        print(f"{a.check}: reproduced")
        return
    if a.out:
        with open(a.out, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
