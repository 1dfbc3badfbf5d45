"""The search algorithms, one package each (adt/), each an :class:`~.base.Algorithm` named in
:mod:`.registry`; commands.py builds `seqrec-fast search NAME` and `retrain` from the registry."""
