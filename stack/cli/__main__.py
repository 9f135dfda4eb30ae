"""`python -m stack.cli`: how the launcher starts each service as its own process."""

import sys

from stack.cli import app

sys.exit(app())
