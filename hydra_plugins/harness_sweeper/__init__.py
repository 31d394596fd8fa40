"""The harness's Hydra sweeper plugin (`hydra/sweeper=staged`, the harness's default)."""
