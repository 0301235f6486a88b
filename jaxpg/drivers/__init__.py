"""Drivers: whole runs from a config.

:mod:`~jaxpg.drivers.train` (``make_train``, ``train_seeds``, ``evaluate``),
:mod:`~jaxpg.drivers.sweep` (settings x seeds in one program),
:mod:`~jaxpg.drivers.runner` (chunked runs with run directories) and
:mod:`~jaxpg.drivers.parallel` (members laid out over devices and hosts).
No argument parsing lives here.
"""
