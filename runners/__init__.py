"""Command-line entry points (`python -m runners.<name>`)."""
