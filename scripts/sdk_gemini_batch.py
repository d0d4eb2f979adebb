#!/usr/bin/env python3
"""Runs one Gemini Batch Mode job with the official google-genai SDK against a local server and
prints what the SDK read, as JSON.

Usage: sdk_gemini_batch.py ROOT_URL KEY MODEL INPUT.jsonl

With the server at ROOT_URL (the SDK adds /v1beta and /upload/v1beta itself): uploads INPUT.jsonl
with client.files.upload (mime type application/jsonl), creates a batch from it with
client.batches.create(src=file name, display_name "sdk-oracle"), lists the batches, polls
client.batches.get until the job has succeeded and names its responses file, downloads that file
with client.files.download and parses every line's response as types.GenerateContentResponse.
Any step the SDK refuses (a shape it does not accept) ends the script with an exception.
"""
import json
import sys
import time

from google import genai
from google.genai import types


def main():
    root, key, model, path = sys.argv[1:5]
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(base_url=root, api_version="v1beta"),
    )
    uploaded = client.files.upload(
        file=path, config={"mime_type": "application/jsonl", "display_name": "sdk-oracle.jsonl"}
    )
    job = client.batches.create(model=model, src=uploaded.name, config={"display_name": "sdk-oracle"})
    created_state = job.state.value if job.state else None
    listed = [j.name for j in client.batches.list()]
    for _ in range(100):
        job = client.batches.get(name=job.name)
        if job.state == types.JobState.JOB_STATE_SUCCEEDED and job.dest and job.dest.file_name:
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"the job never succeeded with a responses file: {job}")
    data = client.files.download(file=job.dest.file_name)
    lines = []
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        v = json.loads(line)
        if "response" in v:
            r = types.GenerateContentResponse.model_validate(v["response"])
            u = r.usage_metadata
            lines.append({"key": v["key"], "text": r.text,
                          "input_tokens": u.prompt_token_count if u else None,
                          "output_tokens": (u.candidates_token_count or 0) + (u.thoughts_token_count or 0) if u else None})
        else:
            lines.append({"key": v["key"], "error": v.get("error") or v.get("status")})
    print(json.dumps({
        "file": uploaded.name,
        "file_state": uploaded.state.value if uploaded.state else None,
        "size_bytes": uploaded.size_bytes,
        "batch": job.name,
        "display_name": job.display_name,
        "created_state": created_state,
        "final_state": job.state.value,
        "model": job.model,
        "responses_file": job.dest.file_name,
        "listed": listed,
        "lines": lines,
    }))


if __name__ == "__main__":
    main()
