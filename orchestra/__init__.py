"""Orchestra: one terminal coding agent delegates a task to another."""

__version__ = "0.1.0"

# True in a process that ends with its command (the CLI: cli.main() ends it at once once the command is
# over). Its tmux windows' pipes are then left for the exit to close (viewer): tmux ends the windows once
# orchestra has returned, not on the cores its way out needs. A program that uses orchestra and goes on
# keeps False: a window's pipe is closed when its agent ends.
ends_with_command = False
