"""Executors: where files are decoded and embedded (local DataLoader workers, or Ray actors)."""
