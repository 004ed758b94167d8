"""What a step is, and what its last run was: content hashes of files, canonical params and
fingerprints, the code closure of a step (source.py reads a file's units, walk.py and
closure.py follow what they reference, stepcode.py fingerprints a plan's steps), the
environment it ran in, and the trace of its last successful run.
"""
