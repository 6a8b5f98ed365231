"""Evaluation for the explorer: background runs with an on-disk cache, the kept network
outputs, the dataset threshold tuner and the worst-image gallery (no streamlit import).

    spec    what an evaluation is (checkpoint, dataset, thresholds) and its cache key
    jobs    launch / read / list / cancel / delete evaluations (job kind "evaluate" of explorer.jobs)
    runner  the job's child entry point (`python -m explorer.evaluation.runner EVAL_DIR`)
    kept    the kept network outputs (decoded boxes + class scores per image)
    tuner   new thresholds over an evaluated dataset, re-running only post-processing
    gallery the worst images per error type and miss cause, with thumbnails
"""
