"""envsetup: pick the right PyTorch wheels for this machine, install them, and prove they work.

The package is split along the flow data takes: probes read the machine, the resolver turns a
machine and a request into a plan, renderers print the plan, executors run it, and `verify` checks
the result from inside the environment. Nothing here imports torch at module level.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
