"""A progress bar over runs (weighted by their estimated cost) with an ETA, on stderr."""

from __future__ import annotations

import sys
import time

from app.runner.jobs import OK, RunJob, RunOutcome


class RunProgress:
    """Counts finished runs; on a terminal one updating line, elsewhere a line per tenth."""

    def __init__(self, jobs: list[RunJob], label: str, quiet: bool = False, stream=None):
        self.cost = {j.name: j.cost for j in jobs}
        self.total = sum(self.cost.values()) or 1.0
        self.label, self.count, self.n, self.done = label, 0, len(jobs), 0.0
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, outcome: RunOutcome) -> None:
        """Called as each run finishes."""
        self.count += 1
        self.done += self.cost.get(outcome.id, 0.0)
        frac = min(self.done / self.total, 1.0)
        note = f" {outcome.id} {outcome.status}" if outcome.status != OK else ""
        if self.quiet or (not self.tty and not note and int(frac * 10) == self._last_decile and self.count < self.n):
            return
        self._last_decile = int(frac * 10)
        elapsed = time.perf_counter() - self.start
        left = elapsed * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        line = f"{self.label} [{bar}] {self.count}/{self.n} runs, {elapsed:.0f} s, ~{left:.0f} s left{note}"
        self.stream.write(("\r" + line.ljust(78)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet and self.count:
            self.stream.write("\n")
            self.stream.flush()


def failures_text(outcomes: list[RunOutcome]) -> str:
    """The failed runs, one line each with the reason ('' when none failed)."""
    failed = [o for o in sorted(outcomes, key=lambda o: o.id) if o.status != OK]
    if not failed:
        return ""
    lines = [f"{len(failed)} run(s) did not finish ok:"]
    lines += [f"  {o.id}: {o.status}{': ' + o.message if o.message else ''}" for o in failed]
    return "\n".join(lines)
