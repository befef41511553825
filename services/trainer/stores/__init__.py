"""Where the trainer keeps what outlives a process: recent history read back, checkpoints, scores."""
