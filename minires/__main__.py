"""``python -m minires`` runs the ``minires`` command."""
import sys

from .cli import main

sys.exit(main())
