"""Evaluation: accuracy by instance on held-out classes, the paper's table and its plot."""
