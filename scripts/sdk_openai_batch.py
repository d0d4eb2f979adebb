#!/usr/bin/env python3
"""Runs one Batch API job with the official OpenAI Python SDK against a local server and prints
what the SDK read, as JSON.

Usage: sdk_openai_batch.py BASE_URL KEY INPUT.jsonl

With the server at BASE_URL (…/v1): uploads INPUT.jsonl with client.files.create(purpose="batch"),
creates a batch from it with client.batches.create (/v1/chat/completions, 24h, metadata
{"mica_tag": "sdk-oracle"}), lists the batches, polls client.batches.retrieve until the batch is
completed, reads its output and error files with client.files.content and parses each output
line's body as openai.types.chat.ChatCompletion. The SDK's typed models validate every object
the server answers; a shape they refuse ends the script with an exception.
"""
import json
import sys
import time

import openai
from openai.types.chat import ChatCompletion


def main():
    base, key, path = sys.argv[1:4]
    client = openai.OpenAI(api_key=key, base_url=base, max_retries=0)
    with open(path, "rb") as f:
        uploaded = client.files.create(file=("sdk-oracle.jsonl", f), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"mica_tag": "sdk-oracle"},
    )
    created_status = batch.status
    listed = [b.id for b in client.batches.list(limit=100)]
    for _ in range(100):
        batch = client.batches.retrieve(batch.id)
        if batch.status == "completed":
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"the batch never completed: {batch}")
    lines = []
    for file_id in [batch.output_file_id, batch.error_file_id]:
        if not file_id:
            continue
        for line in client.files.content(file_id).text.splitlines():
            if not line.strip():
                continue
            v = json.loads(line)
            r = v["response"]
            if r["status_code"] == 200:
                c = ChatCompletion.model_validate(r["body"])
                lines.append({"custom_id": v["custom_id"], "text": c.choices[0].message.content,
                              "input_tokens": c.usage.prompt_tokens if c.usage else None,
                              "output_tokens": c.usage.completion_tokens if c.usage else None})
            else:
                lines.append({"custom_id": v["custom_id"], "status": r["status_code"]})
    print(json.dumps({
        "file": uploaded.id,
        "purpose": uploaded.purpose,
        "batch": batch.id,
        "created_status": created_status,
        "final_status": batch.status,
        "metadata": batch.metadata,
        "counts": batch.request_counts.model_dump() if batch.request_counts else None,
        "listed": listed,
        "lines": lines,
    }))


if __name__ == "__main__":
    main()
