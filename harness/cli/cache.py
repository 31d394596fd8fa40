"""`harness cache`: list, verify, remove or garbage-collect the artifact store."""

from __future__ import annotations

import argparse
import sys

from harness.cli.compose import check, store_root
from harness.core.errors import EXIT_FINDING, ConfigError

NAME = "cache"
HELP = "list, verify, remove or garbage-collect the artifact store"
EXAMPLES = """\
examples:
  harness cache ls                                     # every artifact: what it is, size, date
  harness cache verify                                 # check every artifact's checksums (exit 1 if one fails)
  harness cache rm organisms/0123456789abcdef          # remove one; the next run rebuilds it
  harness cache gc seed=1                              # list what a complete run of this config does not use
  harness cache gc seed=1 --yes                        # ... and remove it
  harness cache ls cache_dir=/shared/cache             # another store
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("ls", "verify", "rm", "gc"))
    p.add_argument("items", nargs="*", help="config overrides (key=value; cache_dir=... picks the store) "
                   "and, for rm, artifacts as kind/key")
    p.add_argument("--yes", action="store_true", help="gc: remove, not only list")


def command(a: argparse.Namespace) -> int:
    from harness.core.progress import progress_bar
    from harness.core.store import Store
    from harness.run import cache

    overrides = [i for i in a.items if "=" in i]
    names = [i for i in a.items if "=" not in i]
    if names and a.action != "rm":
        raise ConfigError(f"cache {a.action}: {names[0]!r} is not an override (key=value)")
    ignored = [o for o in overrides if o.lstrip("+").partition("=")[0] != "cache_dir"]
    if ignored and a.action != "gc":  # only gc asks what a config needs
        raise ConfigError(f"cache {a.action}: {ignored[0]} is not used (cache_dir=DIR picks the store; a config "
                          "matters to cache gc only)")
    cfg = check(overrides) if a.action == "gc" else None
    store = Store(cfg.cache_dir if cfg else store_root(overrides))
    artifacts = list(store.artifacts())
    if a.action == "ls":
        entries = [cache.describe(store, kind, key) for kind, key in artifacts]
        for e in entries:
            print(f"{e.kind:10s} {e.key}  {e.bytes / 2**20:8.2f} MiB  {e.date}  {e.what}")
        print(f"{len(entries)} artifacts, {sum(e.bytes for e in entries) / 2**20:.1f} MiB in {store.root}")
        return 0
    if a.action == "verify":
        with progress_bar(artifacts, "verify", sys.stderr.isatty()) as bar:
            bad = [(kind, key, problems) for kind, key in bar if (problems := store.verify(kind, key))]
        strays = [(kind, key, [f"no artifact: its {Store.MARKER} is missing or not a file"])
                  for kind, key in store.strays()]
        for kind, key, problems in bad + strays:
            print(f"{kind}/{key}: {'; '.join(problems)}")
        removable = [f"{k}/{x}" for k, x, _ in bad if store.owns(k, x)]
        print(f"{len(artifacts) - len(bad)} of {len(artifacts)} artifacts intact in {store.root}"
              + (f", and {len(strays)} folders that are no artifact" if strays else "")
              + (f"; remove the damaged with `harness cache rm {' '.join(removable)}`" if removable else "")
              + ("; move or delete the folders the harness did not write there yourself"
                 if len(removable) < len(bad) + len(strays) else ""))
        return EXIT_FINDING if bad or strays else 0
    if a.action == "rm":
        if not names:
            raise ConfigError("cache rm: name the artifacts to remove (kind/key, as `harness cache ls` shows them)")
        print(f"removed {cache.remove(store, cache.parse_artifacts(names, store))} artifacts from {store.root}")
        return 0
    from harness.run.stage import Run

    keep = cache.needed(Run.of(cfg))
    unused = [(kind, key) for kind, key in artifacts if (kind, key) not in keep and store.owns(kind, key)]
    for kind, key in sorted(set(artifacts) - keep - set(unused)):
        print(f"left alone: {kind}/{key} (the harness did not write that folder there)")
    for kind, key in unused:
        print(f"{'removing' if a.yes else 'unused'}: {kind}/{key}  {cache.describe(store, kind, key).what}")
    if a.yes:
        cache.remove(store, unused)
    print(f"{len(unused)} of {len(artifacts)} artifacts unused by this config"
          + (" removed" if a.yes else " (add --yes to remove them)"))
    return 0
