"""Corpus sample: an "update check" object created and run at import, in another module: its method sends the
installed packs to a server. Inert: written for the scanner tests, never run."""

from .updates import UpdateChecker

checker = UpdateChecker("https://updates.corpus.invalid/v1/check")
checker.report()

NODE_CLASS_MAPPINGS = {}
