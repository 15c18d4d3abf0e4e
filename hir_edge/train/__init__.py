"""Training of CLIBD, CLIBD-HiR (Algo 1) and CLIBD-HiR-Fuse (Algo 2): recipes, trainer, DDP."""
