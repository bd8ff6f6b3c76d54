"""Executing a run on a worker: processes, workspace, logs, results."""
