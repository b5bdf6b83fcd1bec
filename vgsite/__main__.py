"""`python -m vgsite`: SIGTERM acts as Ctrl-C from the first instant, so start-up too exits 130 with one line."""
import signal
import sys


def _interrupted(signum=None, frame=None):
    print("\nInterrupted.", file=sys.stderr)
    sys.exit(130)


signal.signal(signal.SIGTERM, _interrupted)
signal.signal(signal.SIGINT, _interrupted)
try:
    from vgsite.cli import main
except KeyboardInterrupt:
    _interrupted()

main()
