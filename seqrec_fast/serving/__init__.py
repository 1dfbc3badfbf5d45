"""What a trained model is for: recommendations in the log's own ids (``seqrec_fast.load``,
``seqrec-fast recommend``) and a portable copy of it (``seqrec-fast export``)."""
