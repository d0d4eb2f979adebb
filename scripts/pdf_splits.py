#!/usr/bin/env python3
"""Which figures and table rows of a tagged PDF (as Chromium's print to PDF writes it) lie on
more than one page. Python standard library only; reads uncompressed object syntax (Chromium
writes its structure tree that way: StructElem objects whose kids are marked-content ids on the
element's /Pg page, MCR dictionaries with their own /Pg, or further StructElems).

    pdf_splits.py FILE.pdf

Prints JSON: {"pages": N, "figures": n, "rows": n, "tables": n,
"split_figures": k, "split_rows": k, "split_tables": k}.
"""
import json
import re
import sys


def main(path):
    data = open(path, "rb").read()
    objs = {int(m.group(1)): m.group(2)
            for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}

    def pages_of(k, depth=0):
        v = objs.get(k, b"")
        out = set()
        if depth > 64:
            return out
        pg = re.search(rb"/Pg (\d+) 0 R", v)
        kids = re.search(rb"/K\s*(\[.*?\]|\d+ 0 R|\d+)", v, re.S)
        if not kids:
            return out
        k_text = kids.group(1)
        # Marked-content ids (bare integers) belong to the element's own page.
        bare = re.sub(rb"\d+ 0 R", b"", k_text)
        if pg and re.search(rb"\d", bare):
            out.add(int(pg.group(1)))
        for ref in re.findall(rb"(\d+) 0 R", k_text):
            r = int(ref)
            rv = objs.get(r, b"")
            if b"/MCR" in rv:
                p = re.search(rb"/Pg (\d+) 0 R", rv)
                if p:
                    out.add(int(p.group(1)))
            elif b"/StructElem" in rv:
                out |= pages_of(r, depth + 1)
        return out

    counts = {"Figure": [0, 0], "TR": [0, 0], "Table": [0, 0]}
    for k, v in objs.items():
        if b"/StructElem" not in v:
            continue
        m = re.search(rb"/S /(\w+)", v)
        kind = m.group(1).decode() if m else ""
        if kind in counts:
            counts[kind][0] += 1
            if len(pages_of(k)) > 1:
                counts[kind][1] += 1
    pages = sum(1 for v in objs.values() if re.search(rb"/Type\s*/Page[^s]", v))
    print(json.dumps({
        "pages": pages,
        "figures": counts["Figure"][0], "split_figures": counts["Figure"][1],
        "rows": counts["TR"][0], "split_rows": counts["TR"][1],
        "tables": counts["Table"][0], "split_tables": counts["Table"][1],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
