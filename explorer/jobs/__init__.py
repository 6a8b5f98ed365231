"""Background training runs: spec, limits, launch / poll / cancel / resume, locks, damage, metrics."""
