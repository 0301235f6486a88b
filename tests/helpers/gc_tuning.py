"""Python's cyclic garbage collector, tuned for a process that imports JAX
and traces many programs (the suite's workers and the processes they start).

Full collections walk every long-lived object (JAX's, Flax's, the suites'
modules) again and again while programs are traced: about 5% of a worker's
time (3.5 of 5.3 s saved on a 197-test subset), 4% of the documented Python
blocks' process (88.8 -> 85.0 s of CPU). Once the imports are done, those
objects are frozen out of the collector's view, and collections run less
often.
"""

import gc

THRESHOLDS = (20_000, 50, 50)


def tune() -> None:
    """Freeze what exists now and collect less often from here on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
