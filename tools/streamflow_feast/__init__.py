"""The Feast side of the feature store check: runs in .venv-feast (Feast and its pins), never in Airflow's venv.

`python -m streamflow_feast.check` (what `make feast-check` runs after `feast apply`) compares what Feast
serves with `training_examples`. `streamflow_dev.feast` starts it with the warehouse settings.
"""
