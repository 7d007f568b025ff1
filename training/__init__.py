"""flowprep's companion trainer: streams flowprep shards into flow-teacher / RGB-student training.

It reads shards through `flowprep.format` only (the shard contract) and shares flowprep's two small
mechanisms, `flowprep.registry` (models, losses, recipes) and `flowprep.cli_config` (configs -> flags);
only the demo calls the extractor itself, as a library (`flowprep.runner.run_extract`).
"""
