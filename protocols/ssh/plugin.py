"""Entry point of the SSH protocol plugin (group ``hoopd.protocols``)."""

from .engine import SshEngine

PLUGIN = SshEngine()
