"""``python -m quantpipe.serve``: the same as ``quantpipe serve``."""

import sys

from quantpipe.serve.command import main

sys.exit(main(prog="python -m quantpipe.serve"))
