"""The training doctor: signals recorded while a run trains (recorder.py, RUN/diagnostics.csv), read back with the
history (signals.py), judged by documented thresholds (rules.py) and shown by `kiln doctor RUN`, at the end of
`kiln train` and at the head of report.html (findings.py)."""
