"""Everything tipi keeps under `.tipi_cache/`: layout.py names every path; stores.py opens one
make's stores; statefile.py and store.py read and write state files safely; lock.py, leftovers.py,
failures.py and codetable.py are the files with a job of their own.
"""
