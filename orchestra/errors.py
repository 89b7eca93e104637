"""The one exception type for errors a user can act on."""


class OrchestraError(Exception):
    """A problem the user can fix; the CLI prints the message without a traceback."""


class ConfigError(OrchestraError):
    """The configuration is invalid: the message names file, profile and field."""
