"""The paper's findings on top of the models and the trainer: comparisons, the λ sweep, and
the plans of runs that produce their tables (THEORY §3–§4)."""
