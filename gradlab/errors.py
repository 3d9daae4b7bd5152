"""Every exception and warning gradlab raises on purpose, in one leaf module (it imports nothing of gradlab).

Errors share one base, :class:`GradlabError`, so a script can catch every refusal of gradlab in one clause; the
message of each is one line naming the field, file or run. Control flow elsewhere tests these types, never the
text of a message.
"""


class GradlabError(Exception):
    """Base of every error gradlab raises on purpose; its message is one line naming the field, file or run."""


class ConfigError(GradlabError, ValueError):
    """An invalid setting; the message names the field and the allowed values."""


class DataError(GradlabError, ValueError):
    """Bad or missing data; the message names the path/field and the expected layout."""


class RunFolderError(ConfigError):
    """The run folder is in use, or holds something that is not what was asked for."""


class RunFolderInUse(RunFolderError):
    """Another live process holds the run folder's lock."""


class RunFolderStopped(RunFolderError):
    """The run folder holds a run that stopped (diverged, say): resuming it would repeat it."""


class RunDiverged(GradlabError, RuntimeError):
    """Training produced a non-finite or exploding loss, or non-finite or exploding weights; the message names where."""


class WriteError(OSError):
    """Writing ``filename`` failed (full disk, quota, read-only file system, I/O error); ``str`` is one line."""

    def __str__(self) -> str:
        return f"cannot write {self.filename!r}: {self.strerror}"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run: ``str`` says where; ``how`` to go on: "resume", "resume-fresh" (no checkpoint yet),
    "overwrite" (checkpoints off) or "again" (an interrupted overwrite; the earlier record is kept)."""

    def __init__(self, message: str, how: str):
        super().__init__(message, how)
        self.how = how

    def __str__(self) -> str:
        return self.args[0]


class SettingWarning(UserWarning):
    """A setting that has no effect in this configuration."""


class RunFolderWarning(UserWarning):
    """The loaded folder is not a finished run."""
