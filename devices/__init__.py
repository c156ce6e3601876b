"""Device profiles (TOML) and deployment files; data, not code.

This file only makes the folder a package, so that an installed edgemeta finds the profiles through
importlib.resources as `edgemeta.devices` (see devices/profiles.py).
"""
