"""redmedic: diagnose and fix Redis connection failures across a fleet."""
