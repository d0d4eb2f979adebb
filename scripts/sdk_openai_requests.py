#!/usr/bin/env python3
"""Sends request bodies through the official OpenAI Python SDK and prints what the SDK sent.

Usage: sdk_openai_requests.py BODIES.json  (a JSON array of Chat Completions request bodies, as
mica sent them). Each body is passed as keyword arguments to
`openai.OpenAI(...).chat.completions.create(**body)`, against a local server that records the
request and answers a minimal completion. `create()` is typed: a parameter the SDK does not know
raises TypeError, so this also checks every field name mica uses. Prints a JSON array of the
bodies the SDK sent, in order; exits 1 when the SDK refuses one.
"""
import http.server
import json
import sys
import threading

import openai

sent = []


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers["Content-Length"])
        sent.append(json.loads(self.rfile.read(n)))
        body = json.dumps(
            {
                "id": "chatcmpl-oracle",
                "object": "chat.completion",
                "created": 1,
                "model": "oracle",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    bodies = json.load(open(sys.argv[1]))
    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = openai.OpenAI(
        api_key="sk-oracle", base_url=f"http://127.0.0.1:{server.server_port}/v1", max_retries=0
    )
    for i, b in enumerate(bodies):
        try:
            client.chat.completions.create(**b)
        except Exception as e:
            print(json.dumps({"index": i, "error": f"{type(e).__name__}: {e}"}))
            sys.exit(1)
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
