"""Open a page in headless Chromium and report what a reader's browser would: console messages,
uncaught exceptions, log entries (failed loads, Content-Security-Policy violations), every network
request, and the result of JavaScript run on the loaded page.

Talks the DevTools protocol over `--remote-debugging-pipe` (commands on fd 3, replies on fd 4, each a
JSON message ending in NUL), so it needs no port, no websocket library and no driver binary.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageResult:
    console: list[dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled params
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown params
    log: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded entries
    requests: list[str] = field(default_factory=list)  # URLs the page requested
    value: Any = None  # what the probe script returned

    def errors(self) -> list[str]:
        """Every console error or warning, uncaught exception and error/warning log entry."""
        out = [f"console.{c.get('type')}: {[a.get('value', a.get('description')) for a in c.get('args', [])]}"
               for c in self.console if c.get("type") in ("error", "warning", "assert")]
        out += [f"exception: {e.get('exceptionDetails', {}).get('text')}" for e in self.exceptions]
        out += [f"log {e.get('level')} ({e.get('source')}): {e.get('text')} {e.get('url', '')}"
                for e in self.log if e.get("level") in ("error", "warning")]
        return out


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.proc, self.write_fd, self.read_fd = proc, write_fd, read_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read_one(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_one(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(i)
        while True:
            msg = self._read_one(deadline)
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)

    def drain(self, seconds: float) -> None:
        """Collect events for a while (late console messages, CSP reports)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                msg = self._read_one(deadline)
                if "method" in msg:
                    self.events.append(msg)
        except TimeoutError:
            pass


def _high_fd(fd: int) -> int:
    """A copy of `fd` numbered >= 10, so placing the child's fds at 3 and 4 cannot clobber it."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


def open_page(url: str, probe: str, timeout: float = 60.0, settle: float = 1.0,
              offline: bool = False) -> PageResult:
    """Load `url`, wait for its load event, run the JavaScript expression `probe` (its JSON value is
    returned in `value`), and collect everything the page reported on the way. offline=True cuts the
    page's network first (DevTools' network emulation: every http(s) request fails, file: still loads)."""
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("chromium not found (Debian: apt-get install chromium)")
    cmd_r, cmd_w = os.pipe()  # we write commands, Chromium reads them on fd 3
    res_r, res_w = os.pipe()  # Chromium writes replies on fd 4
    cmd_r, res_w = _high_fd(cmd_r), _high_fd(res_w)

    def child_fds() -> None:
        os.dup2(cmd_r, 3)
        os.dup2(res_w, 4)

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=child_fds, close_fds=False)
        os.close(cmd_r)
        os.close(res_w)
        pipe = _Pipe(proc, cmd_w, res_r)
        result = PageResult()
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session=session)
            if offline:
                conditions = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
                pipe.call("Network.emulateNetworkConditions", conditions, session=session)
            pipe.call("Page.navigate", {"url": url}, session=session)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)
            pipe.drain(settle)
            value = pipe.call("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                              session=session)
            if "exceptionDetails" in value:
                raise RuntimeError(f"probe script failed: {value['exceptionDetails']}")
            result.value = value.get("result", {}).get("value")
            pipe.drain(0.2)
            for ev in pipe.events:
                m, p = ev["method"], ev.get("params", {})
                if m == "Runtime.consoleAPICalled":
                    result.console.append(p)
                elif m == "Runtime.exceptionThrown":
                    result.exceptions.append(p)
                elif m == "Log.entryAdded":
                    result.log.append(p.get("entry", {}))
                elif m == "Network.requestWillBeSent":
                    result.requests.append(p.get("request", {}).get("url", ""))
            with contextlib.suppress(RuntimeError, TimeoutError):  # it may close before replying
                pipe.call("Browser.close", timeout=10)
        finally:
            os.close(cmd_w)
            os.close(res_r)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
