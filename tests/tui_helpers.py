"""Shared pieces of the terminal-app tests: small configs and a way to run Pilot code."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import torch

from core.config import RunConfig, preset_config

TINY = {"data.n_train": 512, "data.n_test": 256, "measure.n_points": 128, "model.width": 32,
        "measure.every": 10, "steps": 40, "dtype": "float64", "device": "cpu"}
"""quickstart shrunk so a whole run takes well under a second."""


def tiny_config(**changes) -> RunConfig:
    """The TINY quickstart with dotted-key ``changes``."""
    return preset_config("quickstart").replace(**{**TINY, **changes})


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    """Runs an async test body (pytest has no asyncio plugin here)."""
    asyncio.run(coro_fn())


async def settle(app, pilot) -> None:
    """Waits for every worker to finish and the UI to process what they posted."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Pauses the pilot until ``condition()`` holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.02)


class one_torch_thread:
    """Context: torch on one thread (the UI thread needs the other core), restored after."""

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)
