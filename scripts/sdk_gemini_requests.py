#!/usr/bin/env python3
"""Builds the same generateContent requests with the official google-genai SDK and prints what
the SDK sent.

Usage: sdk_gemini_requests.py MODEL BODIES.json  (a JSON array of generateContent bodies as mica
sent them). Each body is turned into the SDK's typed objects (types.Content for the contents and
the system instruction, types.GenerateContentConfig for temperature, seed, maxOutputTokens,
responseMimeType and types.Schema for responseSchema; an unknown field is an error) and sent with
client.models.generate_content against a local server that records it. Prints a JSON array of
{"path", "body"} as the SDK sent them; exits 1 when the SDK refuses one.
"""
import json
import sys

from google import genai
from google.genai import types

from oracle_recorder import serve

REPLY = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}


CONFIG_FIELDS = {
    "temperature": "temperature",
    "seed": "seed",
    "maxOutputTokens": "max_output_tokens",
    "responseMimeType": "response_mime_type",
}


def sdk_call(body):
    unknown = set(body) - {"contents", "systemInstruction", "generationConfig"}
    if unknown:
        raise ValueError(f"fields this script does not map: {sorted(unknown)}")
    # JSON mode, so base64 image data is read as the API reads it.
    contents = [types.Content.model_validate_json(json.dumps(c)) for c in body["contents"]]
    g = body.get("generationConfig", {})
    unknown = set(g) - set(CONFIG_FIELDS) - {"responseSchema"}
    if unknown:
        raise ValueError(f"generationConfig fields this script does not map: {sorted(unknown)}")
    kwargs = {CONFIG_FIELDS[k]: v for k, v in g.items() if k in CONFIG_FIELDS}
    if "responseSchema" in g:
        kwargs["response_schema"] = types.Schema.model_validate_json(json.dumps(g["responseSchema"]))
    if "systemInstruction" in body:
        kwargs["system_instruction"] = types.Content.model_validate_json(
            json.dumps(body["systemInstruction"])
        )
    config = types.GenerateContentConfig(**kwargs) if kwargs else None
    return contents, config


def main():
    model, bodies = sys.argv[1], json.load(open(sys.argv[2]))
    port, sent = serve(REPLY)
    client = genai.Client(
        api_key="AIza-oracle",
        http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{port}", api_version="v1beta"),
    )
    for i, b in enumerate(bodies):
        try:
            contents, config = sdk_call(b)
            client.models.generate_content(model=model, contents=contents, config=config)
        except Exception as e:
            print(json.dumps({"index": i, "error": f"{type(e).__name__}: {e}"}))
            sys.exit(1)
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
