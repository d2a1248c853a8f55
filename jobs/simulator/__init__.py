"""Seeded simulator of a live-streaming platform: writes raw daily files to a landing zone.

`world` draws (pure NumPy), `lines` renders JSON lines, `corrupt` injects bad lines,
`landing` writes the day folders and the run summary, `truth` saves what an oracle needs.
The same parameters give byte-identical files, and a shorter run is a prefix of a longer one.
"""

from jobs.simulator.landing import make_landing, read_summary, simulate
from jobs.simulator.world import SCALES, SimParams

__all__ = ["SCALES", "SimParams", "make_landing", "read_summary", "simulate"]
