"""Command-line entry points (`python -m runners.<name>`): each parses its flags, calls the library and prints.

`python -m runners.X` imports this package before the runner module, with sys.argv[0] still "-m": that is when
a Ctrl-C or SIGTERM is made to exit at once (130, nothing written), before torch and the data load.
"""

import sys

if sys.argv and sys.argv[0] == "-m":
    from runners.cli import stop_before_work

    stop_before_work()
