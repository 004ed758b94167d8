"""Built-in permanences: Device, ProgressManager, loggers, Network, Data, Hyperparameters.

Each is importable from its module; `type = "Device"` etc. in TOML resolves through the
registry, which imports a module only when a pipeline names its type.
"""
