"""`python -m vgsite`: SIGTERM acts as Ctrl-C from the first instant, so start-up too exits 130 with one line."""
import os
import signal
import sys


def _interrupted(signum=None, frame=None):
    """During start-up nothing is open or half-written yet, so leave at once: unwinding an import of torch half-way
    through (sys.exit) can crash the interpreter's shutdown (SIGABRT) instead of exiting 130."""
    sys.stderr.write("\nInterrupted.\n")
    sys.stderr.flush()
    os._exit(130)


signal.signal(signal.SIGTERM, _interrupted)
signal.signal(signal.SIGINT, _interrupted)
try:
    from vgsite.cli import main
except KeyboardInterrupt:
    _interrupted()

main()
