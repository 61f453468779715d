"""What the API needs at run time, built once by the composition root (app.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.engine.control import EngineControl, NoEngine
from cloudpbx.security import SecretBox

log = logging.getLogger(__name__)


@dataclass
class LoginLimiter:
    """Failed logins per login name and per address in a sliding window (ADM-7).

    In one process this is memory; with several API nodes it belongs in Redis (ENGINEERING §1).
    """

    max_failures: int
    window_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, keys: tuple[str, ...], now: float | None = None) -> int:
        """Seconds until another attempt is allowed for any of the keys (0 = allowed)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [self._wait(key, now) for key in keys]
        return max(waits, default=0)

    def _wait(self, key: str, now: float) -> int:
        window = self._failures.get(key)
        if window is None:
            return 0
        while window and window[0] <= now - self.window_s:
            window.popleft()
        if len(window) < self.max_failures:
            return 0
        return int(window[0] + self.window_s - now) + 1

    def failed(self, keys: tuple[str, ...], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 100_000:  # bound memory under a spray of logins
                self._failures.clear()
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


@dataclass
class AppState:
    settings: Settings
    sessions: sessionmaker[Session]
    secret_box: SecretBox
    limiter: LoginLimiter
    # The engine as the API may use it (AC-1, PRT-1); NoEngine when none runs in-process.
    engine: EngineControl = field(default_factory=NoEngine)
    # Called with a client id after a committed change of its configuration (crud.audit);
    # the engine's snapshot store subscribes here. Called from API worker threads.
    config_listeners: list[Callable[[int], None]] = field(default_factory=list)
    # Called after a committed change of installation-wide configuration the engine uses
    # (operators and their trunks, TRK-1).
    installation_listeners: list[Callable[[], None]] = field(default_factory=list)

    def config_changed(self, client_id: int) -> None:
        """Tell every listener that the client's configuration changed; never raises."""
        for listener in list(self.config_listeners):
            try:
                listener(client_id)
            except Exception:
                log.exception("config listener failed for client %s", client_id)

    def installation_changed(self) -> None:
        """Tell every listener that installation-wide configuration changed; never raises."""
        for listener in list(self.installation_listeners):
            try:
                listener()
            except Exception:
                log.exception("installation config listener failed")
