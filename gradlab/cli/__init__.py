"""The ``gradlab`` command: ``run | data | compare | sweep | figures | info``.

- ``parser`` - the argument parser (every flag, its help and default); ``commands`` - one function per
  command and ``main``, which turns every gradlab error into one line on stderr and an exit code.

The top layer: may import anything in gradlab; nothing imports it.
"""
from gradlab.cli.commands import main
from gradlab.cli.parser import build_parser

__all__ = ["build_parser", "main"]
