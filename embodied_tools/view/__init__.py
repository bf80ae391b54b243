"""``embodied view``: a live view of the stream in rerun, from a running ROS 2 graph, an
``embodied eval`` episode or an MCAP recording (:mod:`embodied_tools.view.stream` has the
entity paths, :mod:`embodied_tools.view.cli` the command)."""
