"""Experiment records: run directories (:mod:`~jaxpg.experiment.rundir`),
orbax checkpoints (:mod:`~jaxpg.experiment.checkpoint`) and TensorBoard logs
(:mod:`~jaxpg.experiment.tblog`)."""
