"""The paper's ablations, runnable: studies as data (`studies`), their runs (`runner`),
statistics (`stats`) and tables (`table`); `python -m ssd.ablate` is the command line."""
