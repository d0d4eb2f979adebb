#!/usr/bin/env python3
"""Extracts the Chat Completions request and response schemas from OpenAI's official OpenAPI
spec (github.com/openai/openai-openapi, MIT licence) into one JSON Schema (draft 2020-12) file
that mica's tests validate against: `CreateChatCompletionRequest`, `CreateChatCompletionResponse`
and every component they reference, nothing else, unchanged except for two mechanical
conversions a JSON Schema validator needs:

- `"nullable": true` (an OpenAPI 3.0 keyword the spec still uses) becomes a type that also allows
  null (`"type": [T, "null"]`, or `anyOf [..., {"type": "null"}]` where there is no `type`);
- `$ref: "#/components/schemas/X"` becomes `"#/$defs/X"`.

Usage: scripts/openai_chat_schema.py PATH/TO/openai-openapi COMMIT > crates/vlm/tests/oracle/openai_chat_schema.json

With `--batch`, the Batch API's objects instead (`CreateBatchRequest`, `Batch`, `OpenAIFile`,
`ListBatchesResponse`): scripts/openai_chat_schema.py --batch PATH COMMIT > crates/vlm/tests/oracle/openai_batch_schema.json
"""
import json
import sys
from pathlib import Path

ROOTS = ["CreateChatCompletionRequest", "CreateChatCompletionResponse"]


def refs(o, acc):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "$ref" and isinstance(v, str):
                acc.add(v.split("/")[-1])
            else:
                refs(v, acc)
    elif isinstance(o, list):
        for v in o:
            refs(v, acc)


def convert(o):
    if isinstance(o, list):
        return [convert(v) for v in o]
    if not isinstance(o, dict):
        return o
    o = {k: convert(v) for k, v in o.items()}
    if "$ref" in o and isinstance(o["$ref"], str):
        o["$ref"] = o["$ref"].replace("#/components/schemas/", "#/$defs/")
    if o.pop("nullable", False) is True:
        t = o.get("type")
        if isinstance(t, str):
            o["type"] = [t, "null"]
        elif isinstance(t, list):
            if "null" not in t:
                o["type"] = t + ["null"]
        else:
            inner = dict(o)
            o = {"anyOf": [inner, {"type": "null"}]}
            for k in ("description", "default", "title"):
                if k in inner:
                    o[k] = inner.pop(k)
    return o


def main():
    global ROOTS
    args = sys.argv[1:]
    what = "Chat Completions"
    if args and args[0] == "--batch":
        args = args[1:]
        ROOTS = ["CreateBatchRequest", "Batch", "OpenAIFile", "ListBatchesResponse"]
        what = "Batch API"
    repo, commit = Path(args[0]), args[1]
    spec = json.loads((repo / "openapi.json").read_text())
    schemas = spec["components"]["schemas"]
    seen, todo = set(), list(ROOTS)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        acc = set()
        refs(schemas[n], acc)
        todo += sorted(acc - seen)
    out = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": (
            f"{what} schemas of OpenAI's OpenAPI spec (github.com/openai/openai-openapi, "
            f"openapi.json at commit {commit}, spec version {spec['info']['version']}, MIT licence, "
            "Copyright (c) OpenAI), extracted by scripts/openai_chat_schema.py: nullable converted "
            "to JSON Schema, $refs to #/$defs; otherwise unchanged."
        ),
        "$defs": {n: convert(schemas[n]) for n in sorted(seen)},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
