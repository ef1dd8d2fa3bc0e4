"""Smoke test: ``python -m app.cli tui`` in a real pseudo-terminal starts, plays, and quits with q."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tui_helpers import TINY

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>PM]")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def nested(flat: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (a config file from dotted keys)."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


class Terminal:
    """A child process on an 80x24 pseudo-terminal, with its screen output collected."""

    def __init__(self, args: list[str]):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        env.pop("TEXTUAL", None)
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.master, self.output = master, b""

    def read_until(self, pattern: bytes, timeout: float) -> bool:
        """Reads output until ``pattern`` shows (escape codes stripped) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern in ANSI.sub(b"", self.output):
                return True
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break
        return pattern in ANSI.sub(b"", self.output)

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float) -> int | None:
        """The exit status, draining output meanwhile (None if still running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.read_until(b"\x00never", 0.1)
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_tui_starts_plays_and_quits_with_q(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"preset": "quickstart", **nested({**TINY, "steps": 10_000_000})}))
    term = Terminal([sys.executable, "-m", "app.cli", "tui", "--config", str(config)])
    try:
        assert term.read_until(b"step 0", 60), term.output[-2000:]
        assert term.read_until(b"q quit", 10)
        term.send(b" ")
        assert term.read_until(b"playing", 10), term.output[-2000:]
        term.send(b"q")  # quits while playing: the worker is cancelled, the process ends cleanly
        assert term.wait(30) == 0, term.output[-2000:]
    finally:
        term.close()


def test_tui_bad_config_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"optim": {"lr": "fast"}}))
    proc = subprocess.run([sys.executable, "-m", "app.cli", "tui", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: optim.lr: must be a number, got str 'fast'"]
