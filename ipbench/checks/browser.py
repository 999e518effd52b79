"""Open a local HTML file in headless Chromium and report what it showed.

The offline HTML report must work from one file with no network: every image decoded, no script error, no
request leaving the machine. Only a browser can tell, so this module starts Chromium headless with name
resolution and its proxy pointed at nothing, drives it through the DevTools protocol over a pipe (stdlib
only: no websocket or automation package), and returns what the page loaded, logged and requested, with an
optional full-page screenshot (the README's picture of the report).

    python -m ipbench.checks.browser REPORT.html [--screenshot OUT.png] [--width 1280]
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ipbench.errors import UsageError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = ("data:", "file:", "about:", "blob:")  # anything else is a request off the machine
SETTLE_S = 2.0  # after the load event: how long images may still take to decode
CLOSE_S = 5.0  # how long Browser.close may take before the browser is killed
ALL_READY = 'document.readyState === "complete" && Array.from(document.images).every(i => i.complete)'
IMAGES = ("Array.from(document.images, i => ({src: i.src.startsWith('data:') ? i.src.slice(0, 60) : i.src, "
          "complete: i.complete, natural_width: i.naturalWidth, natural_height: i.naturalHeight}))")


@dataclass(frozen=True)
class ImageLoad:
    """One <img> as the page left it; natural_width 0 means it did not load or did not decode."""

    src: str  # a data: URI's first 60 characters (its type and how it starts), any other URL whole
    complete: bool
    natural_width: int
    natural_height: int


@dataclass
class PageReport:
    """What one load of a page showed; problems() lists what an offline page must not have."""

    images: list[ImageLoad]
    console_errors: list[str]
    external_requests: list[str]
    failed_loads: list[str]
    title: str
    screenshot: Path | None = None

    def problems(self) -> list[str]:
        """One line per problem: an image that did not load, a console error, a request off the machine."""
        return ([f"image not loaded: {image.src}" for image in self.images if image.natural_width == 0]
                + [f"console error: {text}" for text in self.console_errors]
                + [f"external request: {url}" for url in self.external_requests])


def find_chromium() -> str | None:
    """IPBENCH_CHROMIUM if set (a wrong value is then reported, not silently replaced), else the first
    Chromium or Chrome on PATH."""
    chosen = os.environ.get("IPBENCH_CHROMIUM")
    if chosen:
        return chosen
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class _Chromium:
    """One headless Chromium on a DevTools pipe: commands go out, replies and events come back, NUL-separated."""

    def __init__(self, executable: str, folder: Path, timeout: float) -> None:
        self.timeout, self.deadline = timeout, time.monotonic() + timeout
        self.events: list[dict[str, Any]] = []
        self.hung = False
        self.stderr_path = folder / "stderr.txt"
        self._buffer, self._scanned, self._last_id = bytearray(), 0, 0
        flags = [f"--user-data-dir={folder / 'profile'}", "--headless=new", "--remote-debugging-pipe",
                 "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                 "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves ...
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]  # ... nor is an IP reached
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        # Chromium reads commands on descriptor 3 and writes on 4. subprocess keeps descriptors open in the
        # child (pass_fds) but cannot renumber them, so the pipes go in as stdin/stdout and the shell moves them.
        move = 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null'
        try:
            with open(self.stderr_path, "wb") as stderr:
                self.process = subprocess.Popen(["/bin/sh", "-c", move, executable, *flags], stdin=to_browser,
                                                stdout=from_browser, stderr=stderr, start_new_session=True)
        except OSError:
            os.close(self._in)
            os.close(self._out)
            raise
        finally:
            os.close(to_browser)
            os.close(from_browser)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply, keeping the events that arrive in between."""
        self._last_id += 1
        self._send({"id": self._last_id, "method": method, "params": params or {}}, session)
        while (message := self._receive(method)).get("id") != self._last_id:
            pass
        if "error" in message:
            raise UsageError(f"Chromium refused {method}: {message['error'].get('message')}")
        return message.get("result", {})

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], what: str) -> None:
        """Read messages until `done` holds for the events kept so far."""
        while not done(self.events):
            self._receive(what)

    def close(self) -> None:
        """Ask the browser to quit (unless it stopped answering), then kill what is left of it and its
        helpers: none may outlive the check."""
        try:
            if not self.hung:
                self._send({"id": 0, "method": "Browser.close"})
                self.process.wait(CLOSE_S)
        except (OSError, UsageError, subprocess.TimeoutExpired):  # gone already, or deaf: killed below
            pass
        try:  # it leads its own session: renderer and GPU helpers share its process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        os.close(self._in)
        os.close(self._out)

    def last_stderr_line(self) -> str:
        lines = self.stderr_path.read_text(errors="replace").splitlines() if self.stderr_path.exists() else []
        return next((line.strip() for line in reversed(lines) if line.strip()), "nothing on stderr")

    def _send(self, message: dict[str, Any], session: str | None = None) -> None:
        data = json.dumps({**message, "sessionId": session} if session else message).encode() + b"\0"
        while data:
            try:
                data = data[os.write(self._out, data):]
            except BrokenPipeError:  # it quit before reading: the same one-line error as quitting mid-answer
                raise self._quit(message.get("method", "its reply")) from None

    def _quit(self, waiting_for: str) -> UsageError:
        """The one-line error for a browser that has quit: its exit status and last stderr line."""
        try:
            status = self.process.wait(CLOSE_S)
        except subprocess.TimeoutExpired:
            status = None
        return UsageError(f"Chromium quit (exit status {status}) while waiting for {waiting_for}; "
                          f"its last words: {self.last_stderr_line()}")

    def _receive(self, waiting_for: str) -> dict[str, Any]:
        """The next message; an event is also kept. A one-line UsageError when the browser stops answering."""
        while (end := self._buffer.find(b"\0", self._scanned)) < 0:
            self._scanned = len(self._buffer)
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.hung = True
                raise UsageError(f"Chromium did not answer within {self.timeout:g} s (waiting for {waiting_for}); "
                                 f"its last words: {self.last_stderr_line()}")
            if select.select([self._in], [], [], left)[0]:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:  # the browser closed its end: it exited, or is about to
                    raise self._quit(waiting_for)
                self._buffer += chunk
        message = json.loads(self._buffer[:end])
        del self._buffer[:end + 1]
        self._scanned = 0
        if "method" in message:
            self.events.append(message)
        return message


def open_page(html: Path, screenshot: Path | None = None, width: int = 1280, timeout: float = 60.0) -> PageReport:
    """Load `html` in headless Chromium, offline, and report its images, console errors and requests;
    with `screenshot`, also write a full-page PNG `width` CSS pixels wide (device scale 1)."""
    html = Path(html)
    if not html.is_file():
        raise UsageError(f"{html}: no such HTML file")
    if width < 1 or timeout <= 0:
        raise UsageError(f"width {width} and timeout {timeout:g}: both must be positive")
    executable = find_chromium()
    if executable is None:
        raise UsageError(f"no Chromium found on PATH ({', '.join(BROWSERS)}); "
                         "apt-get install chromium, or set IPBENCH_CHROMIUM to the browser's path")
    if shutil.which(executable) is None:
        raise UsageError(f"IPBENCH_CHROMIUM={executable}: no such executable; point it at a Chromium "
                         "or unset it to search PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="ipbench-chromium-", ignore_cleanup_errors=True) as folder:
        browser = _Chromium(executable, Path(folder), timeout)
        try:
            return _inspect(browser, html.resolve(), None if screenshot is None else Path(screenshot), width)
        finally:
            browser.close()


def _inspect(browser: _Chromium, html: Path, screenshot: Path | None, width: int) -> PageReport:
    """Navigate a fresh tab to `html`, let it settle, and read the page and the events back."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    viewport = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}
    browser.call("Emulation.setDeviceMetricsOverride", viewport, session)
    navigation = browser.call("Page.navigate", {"url": html.as_uri()}, session)
    if navigation.get("errorText"):
        raise UsageError(f"{html}: Chromium could not open it ({navigation['errorText']})")
    browser.wait_for(_loaded, "the page's load event")

    def evaluate(expression: str) -> Any:
        reply = browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return reply["result"].get("value")

    settled_by = min(browser.deadline, time.monotonic() + SETTLE_S)
    while not evaluate(ALL_READY) and time.monotonic() < settled_by:
        time.sleep(0.05)
    images = [ImageLoad(**image) for image in evaluate(IMAGES)]
    title = evaluate("document.title")
    if screenshot is not None:
        content = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        viewport["height"] = max(1, math.ceil(content["height"]))  # the whole page in one viewport
        browser.call("Emulation.setDeviceMetricsOverride", viewport, session)
        png = browser.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        screenshot.write_bytes(base64.b64decode(png))
    return PageReport(images, *_from_events(browser.events), title=title, screenshot=screenshot)


def _short(url: str) -> str:
    """A data: URI cut to its first 60 characters (it can be megabytes), any other URL whole."""
    return url[:60] if url.startswith("data:") else url


def _loaded(events: list[dict[str, Any]]) -> bool:
    """Whether the main frame has navigated to a file and then fired its load event (the blank tab's own
    load event, and the order in which the navigation's reply arrives, do not count)."""
    navigated = [i for i, e in enumerate(events) if e["method"] == "Page.frameNavigated"
                 and "parentId" not in e["params"]["frame"] and e["params"]["frame"]["url"].startswith("file:")]
    return bool(navigated) and any(e["method"] == "Page.loadEventFired" for e in events[navigated[0]:])


def _from_events(events: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """(console errors, external request URLs, failed loads) from the DevTools events of one page load."""
    errors: list[str] = []
    external: list[str] = []
    failed: list[str] = []
    urls: dict[str, str] = {}
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {})
            what = str(thrown.get("description", thrown.get("value", ""))).split("\n")[0]
            errors.append(f"{details.get('text', 'Uncaught')} {what}".strip())
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            errors.append(entry["text"] + (f" ({_short(entry['url'])})" if entry.get("url") else ""))
        elif method == "Network.requestWillBeSent":
            url = urls[params["requestId"]] = params["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES) and url not in external:
                external.append(url)
        elif method == "Network.loadingFailed":
            failed.append(f"{_short(urls.get(params['requestId'], '?'))}: {params.get('errorText', 'failed')}")
    return errors, external, failed


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when the page is clean, 1 when it has problems, 2 for a usage error."""
    parser = argparse.ArgumentParser(prog="python -m ipbench.checks.browser",
                                     description="Load an HTML file in headless Chromium, offline, and list "
                                                 "images that did not load, console errors and network requests.")
    parser.add_argument("html", type=Path, help="the HTML file to open")
    parser.add_argument("--screenshot", type=Path, metavar="OUT.png", help="write a full-page PNG here")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default 1280)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for Chromium (default 60)")
    args = parser.parse_args(argv)
    try:
        report = open_page(args.html, args.screenshot, args.width, args.timeout)
    except (UsageError, OSError) as exc:  # OSError: the screenshot's folder does not exist, say
        print(f"error: {exc}", file=sys.stderr)
        return 2
    loaded = sum(image.natural_width > 0 for image in report.images)
    print(f"{args.html}: {loaded}/{len(report.images)} images loaded")
    problems = report.problems()
    for line in problems:
        print(line)
    if report.screenshot is not None:
        print(f"screenshot: {report.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
