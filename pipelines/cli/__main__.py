"""`python -m pipelines.cli`: the `baton` command."""

import sys

from pipelines.cli import main

sys.exit(main())
