"""Tables (CSV, TSV, Parquet): classification and regression with preprocessing inside the model.

source -> columns -> audit -> prepare/spec -> features/layers -> models -> baselines/metrics ->
task (the contract: train, evaluate, predict, export signature, serving adapter).
"""
