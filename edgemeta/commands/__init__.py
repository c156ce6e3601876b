"""One module per `edgemeta` subcommand, each defining `command`. Heavy imports go inside the command."""
