"""qjm's benchmarks: scripts that measure qjm side by side with what it must beat (not tests,
and not part of the installed package). Run them from a checkout: ``python -m benchmarks``
lists them, ``python -m benchmarks NAME [ARGS]`` runs one."""
