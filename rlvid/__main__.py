"""`python -m rlvid` runs the CLI (what `accelerate launch -m rlvid` needs)."""

import sys

from rlvid.cli import main

sys.exit(main())
