"""Training data: episodes (numpy, and their torch tensors), the device sampler, the Omniglot download."""
