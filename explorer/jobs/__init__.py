"""Background training runs: spec, launch / poll / cancel / resume, locks, metrics."""
