"""Tasks and data: Omniglot (pinned split and preprocessing), episodes, the quadratic task."""
