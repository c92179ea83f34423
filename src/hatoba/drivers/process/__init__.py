"""The default driver: containers as local process groups, each supervised by a small C shim
(``shim.c``) so they survive control-plane restarts with their exit codes and logs intact."""

from .driver import ProcessDriver
from .shim_build import ShimBuildError, ensure_shim

__all__ = ["ProcessDriver", "ShimBuildError", "ensure_shim"]
