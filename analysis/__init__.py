"""Analysis of what runs wrote: paired statistics, learning curves and tables, and views of what was acquired.

Reads rows and state files; imports nothing from the engine's training or scoring.
"""
