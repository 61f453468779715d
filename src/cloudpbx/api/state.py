"""What the API needs at run time, built once by the composition root (app.py)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.security import SecretBox


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
