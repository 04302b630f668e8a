"""Plausible wrong answers to each assignment, and the points each must lose (see tests/test_assignments.py)."""
