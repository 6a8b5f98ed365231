"""The one background-job framework: training runs, evaluations (next: exports, studies).

    kinds     what a job kind is (lane, child entry point, resumable) and the kinds known
    process   the only module that spawns / stops processes; pid liveness; run_child (SIGTERM -> cancelled)
    state     run locks (liveness), per-lane device queues, the launch counter
    start     job.json + status + queue entry + spawn of the runner, under the run lock
    runner    `python -m explorer.jobs.runner JOB_DIR`: waits for its lane, execs the job
    manager   submit (any kind), launch (training), the public API
    controls  cancel / resume / delete, safe under concurrent presses
    runs      a job folder's effective state (job_state), RunInfo of a training run
    damage    reading folders others may have damaged; metrics: validated metrics rows, log tails
    spec, limits  what a training job is and what one launch may ask
File names and the status format: `ssd.runlog`.
"""
