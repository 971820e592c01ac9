"""kit: the teaching kit behind the lesson notebooks."""
__version__ = "0.1.0"
