"""Sub-commands of the ``hamixer`` command line, one module each (see :mod:`hamixer.cli`)."""
