"""`python -m harness.cli`: the `harness` command without its Ctrl-C guard (harness/entry.py)."""

import sys

from harness.cli.dispatch import main

sys.exit(main())
