"""report.html for a table run (placeholder filled in below)."""
