"""Tools around the run-time core: benchmarks, reports, plots and the CLI-only commands.

``embodied/`` is what runs on the robot (numpy, onnxruntime, opencv, constriction); what only
a developer runs lives here, with its own optional dependencies (the ``tools`` extra:
matplotlib, tqdm). Dependencies point one way: ``embodied_tools`` uses ``embodied`` (and
reaches ``sim``, ``policies`` and ``ros_nodes`` lazily, inside a command); ``embodied`` never
imports ``embodied_tools``.

* :mod:`embodied_tools.bench`: the one benchmark registry and ``embodied bench`` dispatcher;
* :mod:`embodied_tools.bench_policy`, :mod:`embodied_tools.bench_codecs`,
  :mod:`embodied_tools.bench_tokens`: the benchmarks of the core's components;
* :mod:`embodied_tools.rd`: the rate-distortion report (``embodied rd``);
* :mod:`embodied_tools.belief`: ``embodied belief``.
"""
