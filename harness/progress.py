"""Progress bars (tqdm only: cheap to import for the read-only commands)."""

import sys

from tqdm.auto import tqdm


def progress_bar(iterable, desc: str, enabled: bool = True, **kw):
    """tqdm that redraws often on a terminal and rarely in a log file."""
    return tqdm(iterable, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=0.2 if sys.stderr.isatty() else 30, **kw)


def close_bars() -> None:
    """Close every open bar, so that a failure's one line is the last thing on the console (a bar
    left open by the failure would redraw itself after it)."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
