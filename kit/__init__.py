"""kit: the teaching kit behind the lesson notebooks."""
__version__ = "0.1.0"

# The one import-time effect: silence the few known library notices listed in kit.env (a logger
# level and a warnings filter, nothing else), so that they are off before peft imports bitsandbytes.
from kit import env as _env

_env.quiet_libraries()
