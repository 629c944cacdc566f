"""Reproducible training scripts for the small models this project ships."""
