"""Meta-training: the loop, the compiled step, data-parallel processes, encoder pretraining, checkpoints."""
