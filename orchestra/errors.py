"""The one exception type for errors a user can act on (and the one a signal raises during a run)."""
import signal


class OrchestraError(Exception):
    """A problem the user can fix; the CLI prints the message without a traceback."""


class ConfigError(OrchestraError):
    """The configuration is invalid: the message names file, profile and field."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM reached orchestra during a run (run.StopSignals). A BaseException, like
    KeyboardInterrupt: an `except Exception` that happens to be running when the signal lands must not
    swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.run_dir = None  # where its record was written, once it was (a Path)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
