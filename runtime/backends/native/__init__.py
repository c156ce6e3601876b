"""The native backend: the whole MANN step as one C function, compiled on first use and called through ctypes."""
