"""`python -m ftlab` is the `ftlab` command."""

import sys

from ftlab.cli import main

sys.exit(main())
