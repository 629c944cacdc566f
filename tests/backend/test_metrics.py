"""The memory meter reads RSS every few tokens, and its peak covers the whole run."""

from __future__ import annotations

import torch

from backend.metrics import MemoryMeter


class CountingMeter(MemoryMeter):
    def __init__(self, every: int) -> None:
        self.reads = 0
        super().__init__(torch.device("cpu"), every=every)

    def sample(self) -> None:
        self.reads += 1
        super().sample()


def test_tick_reads_rss_every_n_tokens_and_finish_reads_once_more() -> None:
    meter = CountingMeter(every=4)
    assert meter.reads == 1  # at the start of the run
    for _ in range(10):
        meter.tick()
    assert meter.reads == 1 + 2  # after tokens 4 and 8
    peak = meter.finish()
    assert meter.reads == 4 and meter.kind == "rss"
    assert peak > 10 * 2**20  # a Python process with torch holds > 10 MiB


def test_peak_keeps_the_largest_reading() -> None:
    meter = MemoryMeter(torch.device("cpu"), every=1)
    first = meter.peak
    block = bytearray(64 * 2**20)  # 64 MiB, touched below so that it is resident
    block[:: 4096] = b"x" * len(block[:: 4096])
    meter.tick()
    del block
    assert meter.finish() >= first + 32 * 2**20
