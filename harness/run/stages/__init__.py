"""The stages, one module each: base_model, organisms, ia, probe (listed in order in run/dag.py)."""
