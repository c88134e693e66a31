"""The ``rmaplab`` command."""
