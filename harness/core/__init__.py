"""The vocabulary and plumbing every layer uses: the shared words (vocabulary), errors, typed
configs and records, the sealed store, provenance, progress bars and W&B logging. Imports nothing
else of the package; each module is imported by name (this file imports none, so that a cheap
command stays cheap)."""
