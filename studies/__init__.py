"""Studies: the experiments built on the engine (acquire) and the generators (gans), one folder per study.

A study holds the logic of one experiment (how its pools or cells are built, what each measures), with no
argparse; its runner in runners/ parses flags, calls it and prints.
"""
