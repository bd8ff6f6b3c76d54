"""Delivering queued runs to ``execute_run``, and taking runs back from dead workers."""
