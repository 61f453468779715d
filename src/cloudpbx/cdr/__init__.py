"""Call detail records (CDR-1, CDR-2, ST-1, DP-7): the writer the engine uses and the search
the API and the benchmark share. The tables are in :mod:`cloudpbx.db.models.cdr`."""
