"""Anomaly detection with autoencoders (task=anomaly): tables and sensor-series windows, trained on normal data."""
