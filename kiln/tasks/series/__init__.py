"""Time-series forecasting: audited timestamps, leak-free windows, honest baselines, exported forecasters (task.py)."""
