"""A local HTTP server for the SDK oracle scripts: records every POSTed JSON body (with its path)
and answers each with one canned JSON reply."""
import http.server
import json
import threading


def serve(reply):
    """Starts the server on 127.0.0.1 in a thread; returns (port, list the requests land in, as
    {"path", "body"})."""
    sent = []
    body = json.dumps(reply).encode()

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers["Content-Length"])
            sent.append({"path": self.path, "body": json.loads(self.rfile.read(n))})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port, sent
