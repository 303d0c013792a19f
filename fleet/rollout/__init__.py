"""Staged rollouts: waves, jobs, workers."""
