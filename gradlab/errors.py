"""gradlab's own exceptions share one base, so a script can catch every refusal of gradlab in one clause.

A leaf module: it imports nothing of gradlab. ``ConfigError`` (a bad setting) and ``SettingWarning`` live here;
the other classes live beside the code that raises them (``DataError`` in :mod:`gradlab.data.sources`,
``RunFolderError`` in :mod:`gradlab.runfolder`, ``RunDiverged`` in :mod:`gradlab.divergence`) and subclass
:class:`GradlabError` too.
"""


class GradlabError(Exception):
    """Base of every error gradlab raises on purpose; its message is one line naming the field, file or run."""


class ConfigError(GradlabError, ValueError):
    """An invalid setting; the message names the field and the allowed values."""


class SettingWarning(UserWarning):
    """A setting that has no effect in this configuration."""
