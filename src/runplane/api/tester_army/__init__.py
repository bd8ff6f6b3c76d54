"""The Tester Army dialect, served at ``/ta/v1`` and ``/ta/api/v1``."""
