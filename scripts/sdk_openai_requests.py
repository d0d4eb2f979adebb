#!/usr/bin/env python3
"""Sends request bodies through the official OpenAI Python SDK and prints what the SDK sent.

Usage: sdk_openai_requests.py BODIES.json  (a JSON array of Chat Completions request bodies, as
mica sent them). Each body is passed as keyword arguments to
`openai.OpenAI(...).chat.completions.create(**body)`, against a local server that records the
request and answers a minimal completion. `create()` is typed: a parameter the SDK does not know
raises TypeError, so this also checks every field name mica uses. Prints a JSON array of the
bodies the SDK sent, in order; exits 1 when the SDK refuses one.
"""
import json
import sys

import openai

from oracle_recorder import serve

REPLY = {
    "id": "chatcmpl-oracle",
    "object": "chat.completion",
    "created": 1,
    "model": "oracle",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}


def main():
    bodies = json.load(open(sys.argv[1]))
    port, sent = serve(REPLY)
    client = openai.OpenAI(api_key="sk-oracle", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    for i, b in enumerate(bodies):
        try:
            client.chat.completions.create(**b)
        except Exception as e:
            print(json.dumps({"index": i, "error": f"{type(e).__name__}: {e}"}))
            sys.exit(1)
    print(json.dumps([r["body"] for r in sent]))


if __name__ == "__main__":
    main()
