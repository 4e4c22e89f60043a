"""gan-acquire's engine: data, the Bayesian CNN, MC-dropout scoring, acquisition and the active loop."""

__version__ = "0.1.0"
