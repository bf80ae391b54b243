"""Rate-adaptive visual tokens from camera to action.

The core package: packet format, codecs, controllers, link emulator, the ONNX
Runtime policy wrapper, the closed-loop step and metrics. Importing it pulls in
neither torch, MuJoCo nor rclpy; the command line (``embodied``) reaches the
``sim``, ``policies`` and ``ros_nodes`` packages lazily, inside the subcommand
that needs them.
"""

__version__ = "0.1.0"
