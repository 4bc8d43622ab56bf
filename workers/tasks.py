"""Celery tasks (placeholder until the worker runtime lands)."""
