#!/usr/bin/env python3
"""Drives `mica annotate`'s page in a real headless Chromium, as a person would: mouse clicks,
drags and button presses sent through the DevTools protocol (Input.dispatchMouseEvent), so the
page's own event handlers run. Python standard library only; the protocol runs over the
`--remote-debugging-pipe` file descriptors 3 and 4.

    annotate_cdp.py CHROMIUM URL ACTIONS.json [SCREENSHOT.png]

ACTIONS is a JSON list of steps, each one of:
  {"click": [x, y]}              left click at image pixel (x, y); "button": "right" for a
                                 background point
  {"drag": [x0, y0, x1, y1]}     a box, dragged from (x0, y0) to (x1, y1) in image pixels
  {"press": "#accept"}           a mouse click on the centre of the element with this selector
  {"key": "Enter"}               a key press
  {"expect": "JS expression"}    waits (up to 60 s) until the expression is true
After every step the driver waits until the page has no request in flight. At the end it prints
a JSON summary of the page's state (window.mica) on stdout and, if asked, saves a screenshot.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, chromium):
        self.to_chrome_r, self.to_chrome_w = os.pipe()
        self.from_chrome_r, self.from_chrome_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="mica-cdp-")
        r, w = self.to_chrome_r, self.from_chrome_w

        def fds():
            # Copies first: the pipes may themselves be descriptors 3 and 4 (and close on exec).
            a, b = os.dup(r), os.dup(w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--window-size=1200,800",
             f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self.to_chrome_r)
        os.close(self.from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buf:
                chunk = os.read(self.from_chrome_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url):
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, timeout=60.0):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.eval(f"Boolean({expr})"):
                return
            time.sleep(0.05)
        state = self.eval("JSON.stringify({error: mica.error, pending: mica.pending, "
                          "ready: mica.ready, status: document.getElementById('status').textContent})")
        raise RuntimeError(f"timed out waiting for {expr}; page: {state}")

    def idle(self):
        self.wait("window.mica && mica.pending === 0")

    def mouse(self, kind, x, y, button="left", buttons=0):
        self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": button,
                                               "buttons": buttons, "clickCount": 1})

    def client(self, x, y):
        return self.eval(f"mica.toClient({x}, {y})")

    def click_at(self, cx, cy, button="left"):
        mask = 1 if button == "left" else 2
        self.mouse("mouseMoved", cx, cy, "none")
        self.mouse("mousePressed", cx, cy, button, mask)
        self.mouse("mouseReleased", cx, cy, button, 0)

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    chromium, url, actions_file = sys.argv[1:4]
    shot = sys.argv[4] if len(sys.argv) > 4 else None
    actions = json.load(open(actions_file))
    b = Browser(chromium)
    try:
        b.open(url)
        b.wait("window.mica && mica.ready")
        for step in actions:
            if "click" in step:
                cx, cy = b.client(*step["click"])
                b.click_at(cx, cy, step.get("button", "left"))
            elif "drag" in step:
                x0, y0, x1, y1 = step["drag"]
                (ax, ay), (bx, by) = b.client(x0, y0), b.client(x1, y1)
                b.mouse("mouseMoved", ax, ay, "none")
                b.mouse("mousePressed", ax, ay, "left", 1)
                for k in range(1, 6):
                    b.mouse("mouseMoved", ax + (bx - ax) * k / 5, ay + (by - ay) * k / 5, "left", 1)
                b.mouse("mouseReleased", bx, by, "left", 0)
            elif "press" in step:
                sel = json.dumps(step["press"])
                r = b.eval(f"(() => {{ const r = document.querySelector({sel}).getBoundingClientRect();"
                           f" return [r.left + r.width / 2, r.top + r.height / 2]; }})()")
                b.click_at(r[0], r[1])
            elif "key" in step:
                k = step["key"]
                codes = {"Enter": 13, "Delete": 46, "Escape": 27, "Backspace": 8}
                for kind in ("keyDown", "keyUp"):
                    b.send("Input.dispatchKeyEvent", {"type": kind, "key": k, "code": k,
                                                      "windowsVirtualKeyCode": codes.get(k, 0)})
            elif "expect" in step:
                b.wait(step["expect"])
            else:
                raise ValueError(f"unknown step {step}")
            b.idle()
        summary = b.eval("JSON.stringify({count: mica.accepted.length, saved: mica.saved, "
                         "error: mica.error, lastSave: mica.lastSave || null, "
                         "status: document.getElementById('status').textContent})")
        if shot:
            png = b.send("Page.captureScreenshot", {"format": "png"})["data"]
            with open(shot, "wb") as f:
                f.write(base64.b64decode(png))
        print(summary)
    finally:
        b.close()


if __name__ == "__main__":
    main()
