"""Experiments: whole jobs built from the commands (``mrtrans demo``, ``reproduce-table1``, ``benchmark
hallucination``). Each is a short recipe over one workspace (:mod:`.workspace`: its folder, record, stage log
and synthetic data) and one resumable grid of training runs (:mod:`.grid`); its schema lives beside it."""
