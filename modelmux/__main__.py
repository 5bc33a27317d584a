"""``python -m modelmux`` runs the command line."""

import sys

from modelmux.cli.main import main

sys.exit(main())
