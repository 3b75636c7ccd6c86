"""Pipeline code shared by every application: config, data, training, tuning, export, plots."""
