"""Inference metrics of one run: TTFT, TPOT, throughput, memory.

- TTFT (time to first token): from the start of the run to the first new token; dominated by
  prefill (the whole prompt goes through the model once, filling the KV cache).
- TPOT (time per output token): mean gap between consecutive new tokens (the decode phase:
  one token through the model, reusing the KV cache).
- throughput: new tokens / total generation time.
- peak memory: on CUDA, torch's max allocated bytes during the run; on CPU, the largest
  resident set size (RSS) of the process seen during the run (sampled at every token).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psutil
import torch


@dataclass(frozen=True)
class RunMetrics:
    prompt_tokens: int
    new_tokens: int
    ttft_s: float | None  # None when no token was generated
    tpot_s: float | None  # None with fewer than two tokens
    tokens_per_s: float | None
    total_s: float
    peak_memory_bytes: int | None  # None when the run was not measured to its end (the client left)
    memory_kind: str | None  # "rss" (CPU process) or "cuda_max_allocated"

    @classmethod
    def from_times(
        cls,
        *,
        start: float,
        token_times: list[float],
        end: float,
        prompt_tokens: int,
        peak_memory_bytes: int | None,
        memory_kind: str | None,
    ) -> RunMetrics:
        n = len(token_times)
        ttft = token_times[0] - start if n else None
        tpot = (token_times[-1] - token_times[0]) / (n - 1) if n > 1 else None
        total = end - start
        return cls(
            prompt_tokens=prompt_tokens,
            new_tokens=n,
            ttft_s=ttft,
            tpot_s=tpot,
            tokens_per_s=n / total if n and total > 0 else None,
            total_s=total,
            peak_memory_bytes=peak_memory_bytes,
            memory_kind=memory_kind,
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class MemoryMeter:
    """Peak memory over one run: `tick()` after every token reads the process's RSS every
    `every` tokens (a read is ~50 us, 1-2 % of a small model's step), `finish()` reads it
    once more. On CUDA, torch's own peak counter is exact and free. `pid`: the process that
    decodes the run, when it is not this one (backend.decode_process)."""

    def __init__(self, device: torch.device, every: int = 8, pid: int | None = None) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        try:
            self._process = psutil.Process(pid)
        except psutil.NoSuchProcess:  # (it has just ended: the run decodes here)
            self._process = psutil.Process()
        self.peak = 0
        self.every = every
        self._ticks = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        self.sample()

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.cuda else "rss"

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % self.every == 0:
            self.sample()

    def sample(self) -> None:
        if not self.cuda:
            try:
                self.peak = max(self.peak, self._process.memory_info().rss)
            except psutil.NoSuchProcess:  # (a decoding process that ended: its run fails and says so)
                return

    def finish(self) -> int:
        if self.cuda:
            self.peak = int(torch.cuda.max_memory_allocated(self.device))
        else:
            self.sample()
        return self.peak
