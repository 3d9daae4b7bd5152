"""``python -m gradlab ...`` is the ``gradlab`` command."""
import sys

from gradlab.cli.commands import main

sys.exit(main())
