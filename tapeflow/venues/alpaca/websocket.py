"""What tapeflow's alpaca-py websocket streams (trade updates, news) share: the websocket
settings, keys kept out of alpaca-py's logs, and stopping at once from another thread."""

from __future__ import annotations

import asyncio
import logging
import time

from tapeflow.redact import guard_logs

WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 180, "max_queue": 1024, "close_timeout": 1.0}


# alpaca-py's stream loggers quote what the server sent (an error's text, a message its models
# could not read), and a server may send the client's own auth message back.
SDK_STREAM_LOGGERS = ("alpaca.data.live.websocket", "alpaca.trading.stream")


def websocket_params(logger: logging.Logger) -> dict[str, object]:
    """alpaca-py's `websocket_params` with the stream's own frame logger."""
    return {**WEBSOCKET_PARAMS, "logger": logger}


def guard_stream_logs(*keys: str) -> None:
    """Keep `keys` (and anything named like a credential) out of alpaca-py's stream logs."""
    guard_logs(SDK_STREAM_LOGGERS, keys)


class PromptStop:
    """Mixin listed before an alpaca-py stream class. The SDK's `stop` only flags the stop,
    which its receive loop notices after up to 5 s; `halt` cancels the loop's task instead."""

    _main: asyncio.Task | None = None  # the task running the stream

    async def _run_forever(self) -> None:
        self._main = asyncio.current_task()
        try:
            await super()._run_forever()  # type: ignore[misc]
        except asyncio.CancelledError:
            pass  # halt() ended it
        finally:
            if self._ws is not None:  # type: ignore[attr-defined]  # say goodbye properly, but briefly (close_timeout)
                try:
                    await self._ws.close()  # type: ignore[attr-defined]
                except Exception:
                    pass
                self._ws = None

    def halt(self, timeout: float = 2.0) -> None:
        """Stop from another thread at once."""
        deadline = time.monotonic() + timeout
        while self._loop is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)  # the thread is starting: its loop appears within milliseconds
        loop = self._loop  # type: ignore[attr-defined]
        if loop is None or loop.is_closed():
            return

        def cancel() -> None:
            self._should_run = False
            if self._main is not None:
                self._main.cancel()

        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:
            pass  # the loop closed meanwhile: the stream has stopped
