import os

# Before torch loads OpenMP (libgomp reads this once): with busy-waiting threads, a CPU shared with
# other processes made tiny-model generation 20x slower (25 s instead of 1.2 s for 16x160 tokens).
# Imported by Django's app registry before any task module imports torch. Override in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
