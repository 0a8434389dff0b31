"""Figures: one module per study, each function reading tidy tables only (no torch)."""
