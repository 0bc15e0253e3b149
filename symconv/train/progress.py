"""A per-epoch progress bar: tqdm when it is installed, otherwise a small one of our own."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator, TextIO


class _PlainBar:
    """``epoch 3/20 [#########-----------]  45/89  loss 0.123`` redrawn in place on ``stream``."""

    WIDTH = 24

    def __init__(self, items: Iterable[Any], total: int, desc: str, stream: TextIO) -> None:
        self.items, self.total, self.desc, self.stream = items, total, desc, stream
        self.done, self.postfix = 0, ""

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            yield item
            self.done += 1
            self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self._draw()

    def _draw(self) -> None:
        filled = self.WIDTH * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.desc} [{bar}] {self.done:>4}/{self.total}  {self.postfix}")
        self.stream.flush()


def progress(items: Iterable[Any], total: int, desc: str, enabled: bool = True, stream: TextIO | None = None) -> Any:
    """Wrap ``items`` in a progress bar (``set_postfix_str`` shows the running loss)."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return _Silent(items)
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar(items, total, desc, stream)
    return tqdm(items, total=total, desc=desc, file=stream, leave=True, dynamic_ncols=True)


class _Silent:
    """No bar at all (for tests and for ``--quiet``)."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def set_postfix_str(self, text: str) -> None:
        pass
