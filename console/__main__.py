"""`python -m console` is the `tradeconsole` command."""

import sys

from console.cli import main

sys.exit(main())
