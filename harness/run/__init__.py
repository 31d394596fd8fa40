"""Running an experiment: the Stage protocol, the stages (stages/), the DAG, splits, the pipeline,
a sweep's fan-out, the store's `harness cache` operations. Above report/, whose leaderboard the
pipeline prints at the end."""
