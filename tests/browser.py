"""Open a page in real headless Chromium (Debian's `chromium`) over the DevTools protocol.

    inspect_page(html_file, screenshot_png, script) -> {"console": [...], "exceptions": [...],
                                                        "failed_requests": [...], "result": <script value>}

Console messages of level error/warning, uncaught exceptions and failed network requests are
collected while the page loads; `script` (a JavaScript expression) is evaluated once it has
loaded, and a full-page screenshot is saved (with slice_height, also slices <name>-1.png, ... to read). Chromium runs with networking pointed nowhere
(a dead proxy), so a page that needs a CDN fails visibly instead of fetching it.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class _Session:
    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=max(end - time.monotonic(), 0.01))))
            except TimeoutError:
                break


def inspect_page(html_file: Path, screenshot: Path, script: str, width: int = 1400, slice_height: int = 0) -> dict:
    from websockets.sync.client import connect

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    profile = Path(tempfile.mkdtemp(prefix="crmtier-chromium-"))
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--proxy-server=127.0.0.1:9", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         f"--window-size={width},1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = _json(f"http://127.0.0.1:{port}/json/list")
        page = next(t for t in targets if t.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            session = _Session(ws)
            for domain in ("Runtime", "Log", "Network", "Page"):
                session.call(f"{domain}.enable")
            session.call("Page.navigate", url=html_file.resolve().as_uri())
            for _ in range(600):
                if session.call("Runtime.evaluate", expression="document.readyState",
                                returnByValue=True)["result"].get("value") == "complete":
                    break
                time.sleep(0.05)
            session.drain(0.5)
            value = session.call("Runtime.evaluate", expression=script, returnByValue=True)["result"].get("value")
            metrics = session.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            for i, top in enumerate(range(0, int(size["height"]), slice_height or 10**9) if slice_height else []):
                part = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                    clip={"x": 0, "y": top, "width": size["width"],
                                          "height": min(slice_height, size["height"] - top), "scale": 1})
                screenshot.with_name(f"{screenshot.stem}-{i + 1}.png").write_bytes(base64.b64decode(part["data"]))
            events = session.events
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    console = [e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
               and e["params"]["entry"].get("level") in ("error", "warning")]
    console += [e["params"] for e in events if e.get("method") == "Runtime.consoleAPICalled"
                and e["params"].get("type") in ("error", "warning", "assert")]
    return {
        "console": console,
        "exceptions": [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"],
        "failed_requests": [e["params"] for e in events if e.get("method") == "Network.loadingFailed"],
        "result": value,
    }


def _json(url: str):
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())
