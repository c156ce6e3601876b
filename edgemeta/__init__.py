"""edgemeta: meta-learners from GPU training to edge devices that learn new classes live.

This top-level module stays free of heavy imports so that `edgemeta.runtime` (torch-free)
and `edgemeta --help` work on a device with only the runtime installed.
"""
__version__ = "0.1.0"


class EdgemetaError(Exception):
    """An error the user can fix; the CLI prints its message as one line and exits non-zero."""
