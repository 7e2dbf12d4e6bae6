"""API parity sweeps against torch.fx (the oracle): oracle.py holds the registry and helpers."""
