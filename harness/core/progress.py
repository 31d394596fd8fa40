"""Progress bars (tqdm only: cheap to import for the read-only commands)."""

import sys

from tqdm.auto import tqdm


def progress_bar(iterable, desc: str, enabled: bool = True, **kw):
    """tqdm that redraws often on a terminal and rarely in a log file. Use it in a `with` block, so
    that a failure inside the loop closes it (a bar left open would redraw itself after the
    failure's one line)."""
    return tqdm(iterable, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=0.2 if sys.stderr.isatty() else 30, **kw)
