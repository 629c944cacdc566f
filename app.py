"""Builds the playground and serves it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, default
127.0.0.1:7860); at SIGTERM, the run log writes what it holds. Nothing else happens here.

The UI is imported inside main(): a decoding process (backend.decode_process) starts as a
spawned Python that imports this module again, and it needs none of Gradio."""

from __future__ import annotations

import logging
import os
import signal

from backend.heap import freeze_long_lived
from backend.playground import Playground
from backend.settings import Settings

#: At SIGTERM, the run log's writer gets this long to write what it holds.
SETTLE_SECONDS = 10.0


def main() -> None:
    from ui.interface import build_demo
    from ui.serving import enable_queue, generation_concurrency

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    playground = Playground(Settings.from_env())
    playground.apply_process_settings()  # torch's thread count (PLAYGROUND_TORCH_THREADS)
    demo = enable_queue(build_demo(playground), generation_concurrency(playground.settings.max_batch))
    freeze_long_lived()  # (the modules and the page's blocks live as long as the app: backend.heap)
    signal.signal(signal.SIGTERM, lambda signum, frame: _end_on_sigterm(playground))
    try:
        demo.launch()
    finally:  # (Ctrl+C: Gradio closes its server, and launch() returns)
        playground.close()


def _end_on_sigterm(playground: Playground) -> None:
    """SIGTERM (docker stop, a Space restarting): the run log writes what its writer holds
    (RunLog.write_behind), then the process ends as SIGTERM ends it."""
    playground.runlog.settle(timeout=SETTLE_SECONDS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # (ends the process before kill() returns...)
    os._exit(128 + signal.SIGTERM)  # (...except as PID 1, the Dockerfile's CMD, whose default the kernel ignores)


if __name__ == "__main__":
    main()
