"""The live progress line while the script runs: steps done, elapsed, last step latency."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from dsprof.store.live_steps import parse_lines


class Progress:
    """Follows metrics/steps.jsonl and redraws one line on stderr (only on a terminal)."""

    def __init__(self, steps_live: Path, *, enabled: bool) -> None:
        self.path = steps_live
        self.steps = 0
        self.last_ms: float | None = None
        self._offset = 0
        self._per_root: dict[int, int] = {}
        self._t0 = time.monotonic()
        self._next = 0.0
        self._live: Live | None = None
        if enabled and sys.stderr.isatty():
            console = Console(stderr=True)
            self._live = Live(
                self._line(),
                console=console,
                transient=True,
                redirect_stdout=True,
                redirect_stderr=True,
                refresh_per_second=4,
            )
            self._live.start()

    @property
    def live(self) -> bool:
        """True while the line is drawn (stderr is a terminal and progress was asked for)."""
        return self._live is not None

    def _line(self) -> Text:
        elapsed = time.monotonic() - self._t0
        last = f"{self.last_ms:.1f} ms" if self.last_ms is not None else "-"
        return Text(
            f"dsprof ▸ {self.steps} steps · {elapsed:.1f} s · last step {last}", style="cyan"
        )

    def refresh(self) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.25
        self._read_new()
        self._live.update(self._line())

    def _read_new(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        complete, _, _ = data.rpartition("\n")
        if not complete:
            return
        self._offset += len(complete.encode("utf-8")) + 1
        rows = parse_lines(complete.splitlines())
        for row in rows:  # every root module's calls: show the busiest one's (the model so far)
            root = row.get("root", -1)
            self._per_root[root] = self._per_root.get(root, 0) + 1
        if self._per_root:
            busiest = max(self._per_root, key=lambda r: self._per_root[r])
            self.steps = self._per_root[busiest]
            last = [r for r in rows if r.get("root", -1) == busiest]
            if last:
                self.last_ms = last[-1]["duration_ns"] / 1e6

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
