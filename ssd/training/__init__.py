"""Training: `train` (the `python -m ssd.train` loop), `engine` (its pieces: trainer step,
optimizer, schedule, resumable sampler), `options` (the `TrainOptions` flags), `recipes`
(named option sets), `runlog` (the run directory) and `checkpoint` (save / load)."""
