"""Orchestra: one terminal coding agent delegates a task to another."""

__version__ = "0.1.0"
