"""DIP (按病种分值付费): packet catalogues, matching, scores (issue 19).

Placeholder written by dip-match so ``drgsim.dip.match`` imports; dip-catalogue owns
this file (its exports replace this one at merge).
"""

from drgsim.dip.match import match

__all__ = ["match"]
