"""flowprep's companion trainer: streams flowprep shards into flow-teacher / RGB-student training.

It depends on the extractor only through `flowprep.format` (the shard contract).
"""
