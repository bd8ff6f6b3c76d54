"""The Sample Platform CI API v1 dialect, served under ``/api/v1``."""
