"""Built-in processes: training, evaluation, prediction, export and profiling (ML lives here).

Each module imports torch only inside its steps, so naming them in TOML costs nothing until they
run.
"""
