"""detcli: the command-line and terminal UI layer over the `engine` library."""

__version__ = "0.1.0"
