"""`python -m charlm` runs the command line."""

import sys

from charlm.cli import main

sys.exit(main())
