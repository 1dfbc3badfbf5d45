"""Training and evaluation engine: configs, losses, metrics, the trainer and its commands.

Import the submodules directly (``seqrec_fast.train.trainer``); this package stays import-light
so that the command line starts fast."""
