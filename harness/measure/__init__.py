"""Measuring what a model does and says: observation (behavior rates, self-reports), probing,
grading, agreement metrics, the audit of any fine-tune, the paired comparison of two runs.
Above train/."""
