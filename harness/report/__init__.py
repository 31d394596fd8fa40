"""Reading and exporting results: leaderboards, a sweep's summary, the HTML report, W&B runs read
back, lm-evaluation-harness tasks and Inspect AI logs. Above measure/."""
