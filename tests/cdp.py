"""A headless Chromium page driven over the DevTools protocol, for tests that interact with the
rendered book (type, click, wait for the live model) rather than only read its DOM.

Chromium listens on a port it picks itself (``--remote-debugging-port=0``, read back from its
``DevToolsActivePort`` file), so parallel test processes never clash. The page's uncaught errors,
``console.error`` calls and every URL it requests are recorded as they happen.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tornado.websocket import websocket_connect  # installed with Jupyter's kernel

# A quiet, isolated Chromium: no sandbox (containers), no GPU, no first-run or background
# traffic, and no name resolves, so nothing outside the machine can be reached.
ISOLATED = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
FLAGS = ["--headless=new", *ISOLATED, "--hide-scrollbars", "--remote-debugging-port=0"]


# What the book's theme (pydata-sphinx-theme) logs on a first visit, when no light or dark mode
# is saved yet: it then picks "auto". A fresh browser profile is always a first visit.
THEME_FIRST_VISIT = "Got invalid theme mode: . Resetting to auto."


class PageError(RuntimeError):
    """A script the test ran in the page threw, or a wait timed out."""


class Page:
    """One browser tab. ``eval`` runs a JavaScript expression (awaiting a promise) and returns
    its JSON value; ``wait_for`` polls an expression until it is truthy."""

    def __init__(self, browser: str, width: int = 1440, height: int = 900) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="cdp-"))
        self.process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.loop = asyncio.new_event_loop()
        self.requests: list[str] = []
        self.errors: list[str] = []  # uncaught exceptions and console.error messages
        self.next_id = 0
        try:
            self.socket = self.loop.run_until_complete(self._connect())
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Network.enable")
            self.resize(width, height)
        except Exception:
            self.close()
            raise

    async def _connect(self):
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise PageError("Chromium did not start")
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
        url = next(t["webSocketDebuggerUrl"] for t in tabs if t["type"] == "page")
        return await websocket_connect(url, max_message_size=1 << 30)

    def _record(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            if not text.startswith(THEME_FIRST_VISIT):
                self.errors.append(text)

    async def _call(self, method: str, params: dict) -> dict:
        self.next_id += 1
        me = self.next_id
        await self.socket.write_message(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            text = await self.socket.read_message()
            if text is None:
                raise PageError("Chromium closed the connection")
            message = json.loads(text)
            if message.get("id") == me:
                if "error" in message:
                    raise PageError(f"{method}: {message['error']}")
                return message["result"]
            self._record(message)

    def call(self, method: str, **params) -> dict:
        return self.loop.run_until_complete(self._call(method, params))

    def resize(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=width < 600,
        )  # fmt: skip

    def goto(self, url: str, timeout: float = 60) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout)

    def eval(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise PageError(details.get("exception", {}).get("description", details["text"]))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise PageError(f"still false after {timeout:.0f} s: {expression}")
            self.loop.run_until_complete(asyncio.sleep(0.1))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.loop.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
