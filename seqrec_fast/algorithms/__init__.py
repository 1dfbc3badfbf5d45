"""The search algorithms (ADT, AdaRec, NASR, EASRec, CANet), one module each, built on seqrec_fast.nas."""
