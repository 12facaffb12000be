"""How far a model download from the Hugging Face hub got: bytes done of total, for status and logs.

The hub reports download progress only through tqdm progress bars. `ClapEmbedder.load` hands
`DownloadProgress.tqdm_class()` to `from_pretrained(tqdm_class=...)`; huggingface_hub then
creates those bars from that class for every file it downloads (plain HTTP and Xet alike,
with the file's size from the hub's metadata as `total`), and the bars report their bytes
here instead of drawing anything. Why the bars rather than watching the `.incomplete` files
in the cache: the bars carry the expected size (a growing file doesn't), count resumed
bytes correctly, and don't depend on the cache's layout (Xet may write a file out of order).

Nothing here imports torch or the hub: the worker reads `snapshot()` from its event loop
while the download runs on the loading thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

MB = 1_000_000


class DownloadProgress:
    """Bytes a model load has downloaded so far, summed over the hub's progress bars (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bars: list[_Bar] = []
        self.started: float | None = None

    def tqdm_class(self) -> type:
        """A tqdm stand-in class whose bars report here (pass as `tqdm_class`)."""
        return type("HauntFmDownloadBar", (_Bar,), {"_progress": self})

    def _register(self, bar: _Bar) -> None:
        with self._lock:
            self._bars.append(bar)
            if self.started is None:
                self.started = time.monotonic()

    def snapshot(self) -> dict[str, int | None] | None:
        """`{"done": bytes, "total": bytes or None}`, or None while the hub has reported nothing."""
        with self._lock:
            bars = [b for b in self._bars if b.counts]
            if not bars:
                return None
            done = sum(max(0, int(b.n)) for b in bars)
            totals = [b.total for b in bars]
        total = sum(int(t) for t in totals if t) if all(totals) else None
        return {"done": done, "total": total}

    def describe(self, label: str) -> str | None:
        """`downloading laion/... 312/812 MB (38 %)`, or None before any byte is reported."""
        snap = self.snapshot()
        if snap is None:
            return None
        done, total = int(snap["done"] or 0), snap["total"]
        if total:
            return f"downloading {label} {done // MB}/{total // MB} MB ({100 * done // total} %)"
        return f"downloading {label} {done // MB} MB"


class _Bar:
    """What huggingface_hub calls on a progress bar (`tqdm_class`), recording bytes instead of drawing.

    A bar counts when its unit is bytes and it shows a total: snapshot_download's separate
    "transfer" bar (no total in its format) repeats the bytes the other bar counts, and the
    bar of files done (unit "it") counts files.
    """

    _progress: DownloadProgress

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.total: float | None = kwargs.get("total")
        self.n: float = kwargs.get("initial") or 0
        self.desc: str = kwargs.get("desc") or ""
        bar_format = kwargs.get("bar_format")
        self.counts = kwargs.get("unit") == "B" and (bar_format is None or "total" in bar_format)
        self._progress._register(self)

    # -- what the hub calls --------------------------------------------------------------------
    def update(self, n: float | None = 1) -> None:
        self.n += n or 0

    def update_transfer(self, n: float | None = 1) -> None:
        # Network bytes (Xet); the bytes written are what `update` reports.
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, desc: str | None = None, *args: Any, **kwargs: Any) -> None:
        self.desc = desc or ""

    def set_description_str(self, desc: str | None = None, *args: Any, **kwargs: Any) -> None:
        self.desc = desc or ""

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        self.n = 0
        if total is not None:
            self.total = total

    def close(self) -> None:
        pass

    @property
    def format_dict(self) -> dict[str, Any]:
        return {"n": self.n, "total": self.total, "rate": None}

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
