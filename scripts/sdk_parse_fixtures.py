#!/usr/bin/env python3
"""Parses reply fixtures with the providers' official Python SDKs and prints what the SDKs read.

Usage: sdk_parse_fixtures.py FILE.json... ; each file name says its kind:
  openai chat replies: chat_completion*.json or openai_*.json (openai.types.chat.ChatCompletion);
  openai error bodies: error_*.json in an `openai` folder (the SDK's status-error mapping);
  gemini replies: generate_content*.json or gemini_*.json (google.genai.types.GenerateContentResponse,
  read as the SDK reads an HTTP answer: _from_response);
  gemini error bodies: error_*.json in a `gemini` folder (google.genai.errors.APIError).
Prints one JSON object per file (file, sdk, and the fields mica also reads); exits 1 on the first
file an SDK cannot parse.
"""
import json
import sys
from pathlib import Path


def openai_reply(d):
    from openai.types.chat import ChatCompletion

    c = ChatCompletion.model_validate(d)
    ch = c.choices[0]
    u = c.usage
    return {
        "sdk": "openai",
        "text": ch.message.content,
        "finish": ch.finish_reason,
        "refusal": ch.message.refusal,
        "input_tokens": u.prompt_tokens if u else None,
        "output_tokens": u.completion_tokens if u else None,
        "model": c.model,
    }


def openai_error(d, status):
    import openai

    try:
        import httpx2 as httpx
    except ImportError:
        import httpx
    client = openai.OpenAI(api_key="sk-oracle", base_url="http://127.0.0.1:9/v1")
    req = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    resp = httpx.Response(status, json=d, request=req)
    err = client._make_status_error_from_response(resp)
    return {
        "sdk": "openai",
        "error_class": type(err).__name__,
        "code": err.code,
        "type": err.type,
        "sdk_would_retry": client._should_retry(resp),
    }


def gemini_reply(d):
    from google.genai import types

    r = types.GenerateContentResponse._from_response(response=d, kwargs={})
    c = r.candidates[0] if r.candidates else None
    text = "".join(p.text or "" for p in (c.content.parts or [])) if c and c.content else ""
    u = r.usage_metadata
    return {
        "sdk": "google-genai",
        "text": text,
        "finish": c.finish_reason.value if c and c.finish_reason else None,
        "input_tokens": u.prompt_token_count if u else None,
        "candidates_tokens": u.candidates_token_count if u else None,
        "thoughts_tokens": u.thoughts_token_count if u else None,
        "model": r.model_version,
    }


def gemini_error(d):
    from google.genai import errors

    code = d["error"]["code"]
    e = errors.APIError(code, d)
    return {"sdk": "google-genai", "code": e.code, "status": e.status, "message": e.message}


def main():
    for f in sys.argv[1:]:
        p = Path(f)
        d = json.loads(p.read_text())
        name, folder = p.name, p.parent.name
        try:
            if name.startswith("error_") and folder == "openai":
                status = 429 if "quota" in name else 400
                out = openai_error(d, status)
            elif name.startswith("error_") and folder == "gemini":
                out = gemini_error(d)
            elif name.startswith(("chat_completion", "openai_")):
                out = openai_reply(d)
            elif name.startswith(("generate_content", "gemini_")):
                out = gemini_reply(d)
            else:
                raise SystemExit(f"{f}: unknown fixture kind")
        except SystemExit:
            raise
        except Exception as e:  # the SDK refused the fixture
            print(json.dumps({"file": str(p), "error": f"{type(e).__name__}: {e}"}))
            sys.exit(1)
        out["file"] = str(p)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
