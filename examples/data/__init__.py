"""Example data shipped with tandemlm as ``tandemlm.data`` (the Brightpeak Outfitters KB
under ``kb/`` and fictional customer records in ``customers.jsonl``)."""
