"""`python -m core <command>`: the same command line as the `taxolens` console script."""
import sys

from core.cli import main

sys.exit(main())
