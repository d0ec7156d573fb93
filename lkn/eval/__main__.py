"""``python -m lkn.eval ...`` is ``lkn eval ...``."""

import sys

from lkn.__main__ import main

sys.exit(main(["eval", *sys.argv[1:]]))
