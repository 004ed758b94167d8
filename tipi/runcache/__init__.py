"""The run cache: outputs of successful runs kept by content and found again by their run key
(content.py, record.py, files.py; `tipi cache gc` in collect.py), shared through a remote
(remote*.py over fsspec; lookahead.py and threads.py keep its traffic off the critical path).
The step's side of it (look up, restore, save) is tipi/step_cache.py.
"""
