"""Methods, one per file, registered by name (see :mod:`gradlab.methods.base` for the contract)."""
from gradlab.methods import bic, dgr, eeil, finetune, icarl, lucir, lws, podnet, sir, wa  # noqa: F401  (registers)
from gradlab.methods.base import (
    METHODS,
    Method,
    build_method,
    list_methods,
    method_options,
    register,
)

__all__ = ["METHODS", "Method", "build_method", "list_methods", "method_options", "register"]
