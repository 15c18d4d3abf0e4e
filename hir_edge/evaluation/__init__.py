"""Evaluation: the paper's prompt-ranking tables, CLIBD's nearest-reference protocol, hierarchy,
calibration, abstention and the classical DNA baselines."""
