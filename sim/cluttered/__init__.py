"""The cluttered suite: many objects, an instruction that names one, things that move.

Built on Meta-World's Sawyer arm and table (``sim.cluttered.scene``), with the suite's
tasks, vocabulary and seeded layouts in ``sim.cluttered.spec`` (importable without MuJoCo),
the gymnasium env in ``sim.cluttered.env``, scripted experts in ``sim.cluttered.expert`` and
the measurements in ``sim.cluttered.measure``. See docs/cluttered.md.
"""
